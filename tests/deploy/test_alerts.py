"""The alerting rules: deploy/prometheus/webhook-bridge.rules.yml and the
monitoring kustomization deploy/k8s/monitoring (PrometheusRule, PodMonitor).

- `promtool check rules` accepts the rules file, and `promtool test rules`
  passes webhook-bridge.rules.test.yml, which has, for every alert, a case
  that fires (exact labels and annotations) and one that stays silent;
- the PrometheusRule carries the same groups as the rules file (and is what
  make-prometheusrule.py writes), and it and the PodMonitor match the
  Prometheus Operator's CRD schemas (monitoring.coreos.com/v1, the fields
  used here, strict: unknown fields are errors). They are not part of the
  base (deploy/k8s), so test_k8s.py's core-API validation never sees them;
- the PodMonitor scrapes the Deployment's admin port, and the job name it
  gives is one the `up` alerts select;
- broken rules make promtool fail: a misspelt function, a bad duration, a
  bad template, a changed threshold that the unit tests notice.
promtool comes with Debian's `prometheus` package (deploy/install-deps.sh --test)."""
import copy
import os
import pathlib
import re
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import SOURCE_DIR, kustomize_build, load_yaml_docs, run  # noqa: E402

PROM = SOURCE_DIR / "deploy" / "prometheus"
RULES = PROM / "webhook-bridge.rules.yml"
RULES_TEST = PROM / "webhook-bridge.rules.test.yml"
GENERATOR = PROM / "make-prometheusrule.py"
MONITORING = SOURCE_DIR / "deploy" / "k8s" / "monitoring"
K8S = SOURCE_DIR / "deploy" / "k8s"

EXPECTED_ALERTS = {
    "WebhookBridgeDown", "WebhookBridgeAbsent",
    "WebhookBridgeKafkaUnreachable", "WebhookBridgeKafkaBrokersDown",
    "WebhookBridgeProducerQueueNearFull", "WebhookBridgeUnsafeTopic",
    "WebhookBridgeFailureAnswers",
    "WebhookBridgeDeadLettersRising", "WebhookBridgeTopicMissing",
    "WebhookBridgeSpoolAgeing", "WebhookBridgeAuthLookupsNotConfirming",
    "WebhookBridgeKafkaAuthenticationFailing", "WebhookBridgeTopicTooSmall",
    "WebhookBridgeRefusedForGood",
}
SEVERITIES = {"critical", "warning", "info"}


def load(path):
    import yaml

    return yaml.safe_load(pathlib.Path(path).read_text())


def alerts(groups):
    return [r for g in groups for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def promtool():
    path = os.environ.get("WB_PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("promtool not found: apt-get install prometheus (deploy/install-deps.sh --test)")
    return path


@pytest.fixture(scope="module")
def groups():
    return load(RULES)["groups"]


@pytest.fixture(scope="module")
def monitoring():
    res = kustomize_build(MONITORING)
    assert res.returncode == 0, res.stderr
    return load_yaml_docs(res.stdout)


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


# ---- promtool -----------------------------------------------------------------------

def test_check_rules(promtool, groups):
    res = run([promtool, "check", "rules", str(RULES)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in res.stdout


def test_unit_tests(promtool):
    res = run([promtool, "test", "rules", str(RULES_TEST)], cwd=PROM)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_the_alerts(groups):
    found = alerts(groups)
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == EXPECTED_ALERTS
    for r in found:
        assert r["labels"]["severity"] in SEVERITIES, r["alert"]
        assert r["annotations"].get("summary") and r["annotations"].get("description"), r["alert"]
        # the description says for how long the condition held, as `for` has it
        if "for" in r:
            m = re.fullmatch(r"(\d+)m", r["for"])
            assert m, (r["alert"], r["for"])
            minutes = int(m.group(1))
            assert f"{minutes} minute" in r["annotations"]["description"], r["alert"]
    by = {r["alert"]: r for r in found}
    assert by["WebhookBridgeKafkaUnreachable"]["for"] == "1m"
    assert by["WebhookBridgeKafkaBrokersDown"]["labels"]["severity"] == "warning"
    assert by["WebhookBridgeProducerQueueNearFull"]["for"] == "2m"
    assert by["WebhookBridgeUnsafeTopic"]["for"] == "10m"
    # no rate/increase window shorter than 5m (several scrapes at 1m intervals)
    for r in found:
        for window in re.findall(r"\[(\d+)([smh])\]", r["expr"]):
            seconds = int(window[0]) * {"s": 1, "m": 60, "h": 3600}[window[1]]
            assert seconds >= 300, (r["alert"], window)


def test_every_alert_fires_and_stays_silent_in_a_test():
    """Each alert has a unit-test case that expects it firing, with labels and
    annotations, and one that expects no alert."""
    cases = [c for t in load(RULES_TEST)["tests"] for c in t.get("alert_rule_test", [])]
    for name in EXPECTED_ALERTS:
        mine = [c for c in cases if c["alertname"] == name]
        firing = [a for c in mine for a in c.get("exp_alerts") or []]
        assert firing, f"{name}: no case where it fires"
        assert all(a.get("exp_labels", {}).get("severity") and a.get("exp_annotations")
                   for a in firing), f"{name}: a firing case without labels or annotations"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no case where it is silent"
    assert load(RULES_TEST)["rule_files"] == [RULES.name]


# ---- broken rules fail --------------------------------------------------------------

BROKEN_RULES = [
    ("misspelt function", "(rate(webhook_bridge_requests_total{code", "(rtae(webhook_bridge_requests_total{code",
     "rtae"),
    ("bad duration", "for: 10m", "for: 10 minutes", "10 minutes"),
    ("unbalanced parenthesis", "max by (namespace, job) (webhook_bridge_topics_unsafe)",
     "max by (namespace, job) (webhook_bridge_topics_unsafe", "unclosed"),
    ("bad template", "{{ $value | humanizePercentage }} full", "{{ $value | humanizePercentag }} full",
     "humanizePercentag"),
]


@pytest.mark.parametrize("what,old,new,needle", BROKEN_RULES, ids=[b[0] for b in BROKEN_RULES])
def test_broken_rules_fail(promtool, tmp_path, what, old, new, needle):
    text = RULES.read_text()
    assert text.count(old) == 1, f"{what}: {old!r} is not in the rules once"
    path = tmp_path / RULES.name
    path.write_text(text.replace(old, new))
    res = run([promtool, "check", "rules", str(path)])
    assert res.returncode != 0, f"{what}: promtool accepted it\n{res.stdout}"
    assert needle in res.stdout + res.stderr, res.stdout + res.stderr


WRONG_RULES = [
    ("threshold 50 %", ") > 0.05\n", ") > 0.5\n", "WebhookBridgeFailureAnswers"),
    ("for 10m, not 1m", "== 0\n        for: 1m", "== 0\n        for: 10m", "WebhookBridgeKafkaUnreachable"),
    ("no low-traffic guard", "[5m])) >= 5", "[5m])) >= 0", "WebhookBridgeFailureAnswers"),
    ("no zero-bound guard", "(webhook_bridge_producer_queue_max_messages > 0)",
     "webhook_bridge_producer_queue_max_messages", "WebhookBridgeProducerQueueNearFull"),
    ("every dead letter is a missing topic", '{reason="unknown_topic"}', "",
     "WebhookBridgeTopicMissing"),
]


@pytest.mark.parametrize("what,old,new,alert", WRONG_RULES, ids=[w[0] for w in WRONG_RULES])
def test_wrong_rules_fail_the_unit_tests(promtool, tmp_path, what, old, new, alert):
    """Valid rules that do the wrong thing: `promtool test rules` notices."""
    text = RULES.read_text()
    assert text.count(old) == 1, f"{what}: {old!r} is not in the rules once"
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    assert run([promtool, "check", "rules", str(tmp_path / RULES.name)]).returncode == 0, what
    res = run([promtool, "test", "rules", RULES_TEST.name], cwd=tmp_path)
    assert res.returncode != 0, f"{what}: the unit tests passed\n{res.stdout}"
    assert f"alertname: {alert}," in res.stdout + res.stderr, res.stdout + res.stderr


# ---- the PrometheusRule and the PodMonitor ------------------------------------------

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    "namespace": {"type": "string"}, "labels": STRING_MAP, "annotations": STRING_MAP}}

# prometheus-operator's monitoring.coreos.com_prometheusrules.yaml (v0.82),
# openAPIV3Schema, made strict (additionalProperties: false).
PROMETHEUSRULE_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": OBJECT_META,
        "spec": {"type": "object", "additionalProperties": False, "properties": {
            "groups": {"type": "array", "items": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "query_offset": {"type": "string", "pattern": DURATION},
                    "labels": STRING_MAP,
                    "limit": {"type": "integer"},
                    "partial_response_strategy": {"type": "string"},
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["expr"], "additionalProperties": False,
                        "properties": {
                            "alert": {"type": "string"},
                            "record": {"type": "string"},
                            "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "for": {"type": "string", "pattern": DURATION},
                            "keep_firing_for": {"type": "string", "minLength": 1,
                                                "pattern": DURATION},
                            "labels": STRING_MAP,
                            "annotations": STRING_MAP}}}}}}}}},
}

# monitoring.coreos.com_podmonitors.yaml: the fields a PodMonitor like this
# one uses (a subset; add a field here when the manifest starts using it).
PODMONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": OBJECT_META,
        "spec": {"type": "object", "required": ["selector"], "additionalProperties": False,
                 "properties": {
                     "jobLabel": {"type": "string"},
                     "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                     "namespaceSelector": {"type": "object", "additionalProperties": False,
                                           "properties": {
                                               "any": {"type": "boolean"},
                                               "matchNames": {"type": "array",
                                                              "items": {"type": "string"}}}},
                     "selector": {"type": "object", "additionalProperties": False, "properties": {
                         "matchLabels": STRING_MAP,
                         "matchExpressions": {"type": "array"}}},
                     "podMetricsEndpoints": {"type": "array", "items": {
                         "type": "object", "additionalProperties": False, "properties": {
                             "port": {"type": "string"},
                             "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
                             "path": {"type": "string"},
                             "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                             "interval": {"type": "string", "pattern": DURATION},
                             "scrapeTimeout": {"type": "string", "pattern": DURATION},
                             "honorLabels": {"type": "boolean"},
                             "relabelings": {"type": "array"},
                             "metricRelabelings": {"type": "array"}}}}}},
    },
}


def schema_errors(obj, schema):
    import jsonschema

    v = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(obj)]


def test_monitoring_builds(monitoring):
    assert sorted(o["kind"] for o in monitoring) == ["PodMonitor", "PrometheusRule"]
    for o in monitoring:
        assert o["metadata"]["namespace"] == "webhooks", o["kind"]
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "webhook-bridge"


def test_monitoring_not_in_the_base():
    """The base must apply on a cluster without the Operator's CRDs."""
    base = load(K8S / "kustomization.yaml")
    assert not any("monitoring" in r for r in base.get("resources", []))


def test_prometheusrule_has_the_rules_file_groups(monitoring, groups):
    rule = one(monitoring, "PrometheusRule")
    assert rule["spec"]["groups"] == groups, \
        "prometheusrule.yaml differs from webhook-bridge.rules.yml: run " \
        "python3 deploy/prometheus/make-prometheusrule.py"
    # and it is exactly what the generator writes
    res = run([sys.executable, str(GENERATOR), "--check"])
    assert res.returncode == 0, res.stderr


def test_prometheusrule_schema(monitoring):
    rule = one(monitoring, "PrometheusRule")
    assert schema_errors(rule, PROMETHEUSRULE_SCHEMA) == []
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            assert ("alert" in r) != ("record" in r), r


def test_podmonitor(monitoring, groups):
    pm = one(monitoring, "PodMonitor")
    assert schema_errors(pm, PODMONITOR_SCHEMA) == []
    res = kustomize_build(K8S)
    assert res.returncode == 0, res.stderr
    dep = next(o for o in load_yaml_docs(res.stdout) if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]
    assert pm["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert "namespaceSelector" not in pm["spec"], "its own namespace, the Deployment's"
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["port"] == "admin" and ep["path"] == pod["metadata"]["annotations"]["prometheus.io/path"]
    assert ports["admin"] == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    # the job the Operator gives its targets, "<namespace>/<name>", is the one
    # the `up` alerts select
    assert "jobLabel" not in pm["spec"]
    job = f"{pm['metadata']['namespace']}/{pm['metadata']['name']}"
    for r in alerts(groups):
        for regex in re.findall(r'up\{job=~"([^"]+)"\}', r["expr"]):
            assert re.fullmatch(regex, job), (r["alert"], regex, job)
            assert not re.fullmatch(regex, "webhooks/orders-service"), regex


BROKEN_OBJECTS = [
    ("PrometheusRule", "for as words",
     lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("for", "5 minutes")),
    ("PrometheusRule", "misspelt rule field",
     lambda o: o["spec"]["groups"][0]["rules"][0].__setitem__("expression",
                                                               o["spec"]["groups"][0]["rules"][0].pop("expr"))),
    ("PrometheusRule", "annotation not a string",
     lambda o: o["spec"]["groups"][0]["rules"][0]["annotations"].__setitem__("priority", 1)),
    ("PrometheusRule", "groups not under spec", lambda o: o.__setitem__("groups", o["spec"].pop("groups"))),
    ("PodMonitor", "endpoints misspelt",
     lambda o: o["spec"].__setitem__("podMetricEndpoints", o["spec"].pop("podMetricsEndpoints"))),
    ("PodMonitor", "interval as a number",
     lambda o: o["spec"]["podMetricsEndpoints"][0].__setitem__("interval", 30)),
    ("PodMonitor", "v1beta1", lambda o: o.__setitem__("apiVersion", "monitoring.coreos.com/v1beta1")),
]


@pytest.mark.parametrize("kind,what,mutate", BROKEN_OBJECTS, ids=[f"{b[0]}: {b[1]}" for b in BROKEN_OBJECTS])
def test_broken_monitoring_objects_fail(monitoring, kind, what, mutate):
    o = copy.deepcopy(one(monitoring, kind))
    mutate(o)
    schema = PROMETHEUSRULE_SCHEMA if kind == "PrometheusRule" else PODMONITOR_SCHEMA
    assert schema_errors(o, schema), what


def test_differing_prometheusrule_is_noticed(monitoring, groups, tmp_path):
    """A PrometheusRule edited by hand, not regenerated, fails the comparison."""
    rule = copy.deepcopy(one(monitoring, "PrometheusRule"))
    rule["spec"]["groups"][1]["rules"][0]["for"] = "5m"
    assert rule["spec"]["groups"] != groups
    assert (MONITORING / "prometheusrule.yaml").read_text().count("> 0.05") == 1
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text((MONITORING / "prometheusrule.yaml").read_text().replace("> 0.05", "> 0.5"))
    res = run([sys.executable, str(GENERATOR), "--check", str(stale)])
    assert res.returncode == 1 and "stale" in res.stderr, res.stdout + res.stderr
