#!/usr/bin/env python3
"""Writes deploy/k8s/monitoring/prometheusrule.yaml, the Prometheus Operator's
PrometheusRule carrying the groups of deploy/prometheus/webhook-bridge.rules.yml.

    python3 deploy/prometheus/make-prometheusrule.py          # rewrite it
    python3 deploy/prometheus/make-prometheusrule.py --check  # exit 1 if stale
    python3 deploy/prometheus/make-prometheusrule.py --check FILE
    python3 deploy/prometheus/make-prometheusrule.py -        # print it

The rules file's text from its `groups:` line on becomes `spec:`, indented
two spaces, so that comments and formatting survive (no YAML library needed).
tests/deploy/test_alerts.py checks that the two files carry the same groups."""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
RULES = HERE / "webhook-bridge.rules.yml"
OUT = HERE.parent / "k8s" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/webhook-bridge.rules.yml by
# deploy/prometheus/make-prometheusrule.py: edit that file, then run the script.
# The same alerting rules as a PrometheusRule of the Prometheus Operator
# (monitoring.coreos.com/v1); the comments in the rules file explain them.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: webhook-bridge
  labels:
    app.kubernetes.io/name: webhook-bridge
    app.kubernetes.io/component: alerts
spec:
"""


def render(rules_text):
    lines = rules_text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("groups:")), None)
    if start is None:
        raise SystemExit(f"{RULES}: no top-level `groups:` line")
    body = "".join(("  " + l if l.strip() else "") + "\n" for l in lines[start:])
    return HEADER + body


def main(argv):
    text = render(RULES.read_text())
    if argv[1:] == ["-"]:
        sys.stdout.write(text)
        return 0
    if argv[1:2] == ["--check"] and len(argv) <= 3:
        out = pathlib.Path(argv[2]) if len(argv) == 3 else OUT
        if not out.is_file() or out.read_text() != text:
            print(f"{out} is stale: run {argv[0]}", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
