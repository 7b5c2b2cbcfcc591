"""test_docs.py (tests/style) - the documentation cannot drift from the code.

- deploy/CONFIGURATION.md holds `webhook-bridge --help-config` (generated from
  the settings table of bridge/config.c) byte for byte, and every bound and
  default it states is what `--check-config` accepts and refuses; the
  producer defaults it lists are those of bridge/kafka.c.
- Every relative link between the repository's Markdown files points to a
  file that exists, and every #anchor to a heading of that file.
- The commands the docs give: the top README's two commands exist and are
  what CI and the Dockerfile run; its "Try it" curl commands, run against
  the embedded default, get the receipt the README shows and the record is
  read back with the README's kcat command; every curl example's fixture
  exists and its JSON body parses; every option given to webhook-bridge,
  replay and deadletters is one their --help lists.

Regenerate the reference after changing the settings table:
    python3 tests/style/test_docs.py --write build/release/webhook-bridge
"""
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
BRIDGE = os.environ.get("WB_BRIDGE", "")
REFERENCE = ROOT / "deploy" / "CONFIGURATION.md"
BEGIN = "<!-- BEGIN webhook-bridge --help-config (generated: do not edit by hand) -->\n"
END = "<!-- END webhook-bridge --help-config -->\n"

needs_bridge = pytest.mark.skipif(not BRIDGE or not os.path.exists(BRIDGE),
                                  reason="WB_BRIDGE (set by ctest) names no binary")


def run(*argv, env=None, **kw):
    e = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    e.update(env or {})
    return subprocess.run([BRIDGE, *argv], env=e, capture_output=True, text=True, timeout=60, **kw)


# ---------------------------------------------------------------- the reference

def generated_block(text):
    assert BEGIN in text and END in text, f"{REFERENCE} lost its markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def write_reference(bridge):
    out = subprocess.run([bridge, "--help-config"], capture_output=True, text=True,
                         check=True).stdout
    text = REFERENCE.read_text()
    head, rest = text.split(BEGIN, 1)
    REFERENCE.write_text(head + BEGIN + out + END + rest.split(END, 1)[1])


def table_rows(block):
    """The [server]/[kafka]/[spool] rows: dicts by the header's names."""
    lines = [l for l in block.split("\n\n")[0].splitlines() if l.startswith("| `[")]
    names = ["section", "key", "env", "type", "default", "bounds", "meaning"]
    rows = []
    for l in lines:
        cells = [c.strip() for c in l.strip().strip("|").split(" | ")]
        assert len(cells) == len(names), l
        rows.append({n: c.strip("`") if n != "bounds" else c for n, c in zip(names, cells)})
    return rows


@needs_bridge
def test_reference_is_what_the_binary_prints():
    out = run("--help-config")
    assert out.returncode == 0, out.stderr
    assert generated_block(REFERENCE.read_text()) == out.stdout, (
        "deploy/CONFIGURATION.md differs from `webhook-bridge --help-config`: regenerate it with "
        "python3 tests/style/test_docs.py --write <build>/webhook-bridge")


@needs_bridge
def test_help_config_ignores_the_environment():
    assert run("--help-config", env={"BRIDGE_THREADS": "7"}).stdout == run("--help-config").stdout


def check(env=None, ini=None):
    args = ["--check-config"]
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
        if ini is not None:
            f.write(ini)
            f.flush()
            args = ["--config", f.name, *args]
        return run(*args, env=env)


@needs_bridge
def test_every_default_and_bound_is_what_check_config_accepts():
    rows = table_rows(generated_block(REFERENCE.read_text()))
    assert {r["key"] for r in rows} >= {"listen", "brokers", "threads", "max_bytes"}
    # every section/key, set in a file to its documented default, is accepted
    ini = ""
    for r in rows:
        default = "" if r["default"] == "empty" else r["default"]
        ini += f"[{r['section'].strip('[]')}]\n{r['key']} = {default}\n"
    res = check(ini=ini)
    assert res.returncode == 0, res.stderr
    low, high, bad = {}, {}, {}
    for r in rows:
        m = re.fullmatch(r"(\d+) to (\d+)", r["bounds"])
        if r["type"] == "integer":
            assert m, r
            lo, hi = int(m.group(1)), int(m.group(2))
            assert lo <= int(r["default"]) <= hi, r
            low[r["env"]], high[r["env"]] = str(lo), str(hi)
            bad[r["env"]] = str(hi + 1)
            if lo > 0:  # below the bound, checked apart (one error per variable)
                res = check(env={r["env"]: str(lo - 1)})
                assert res.returncode == 1 and r["env"] in res.stderr, (r, res.stderr)
        elif r["type"] == "boolean":
            for v in re.findall(r"`([^`]+)`", r["bounds"]):
                assert check(env={r["env"]: v}).returncode == 0, (r, v)
            bad[r["env"]] = "maybe"
        elif r["type"] == "level":
            for v in re.findall(r"`([^`]+)`", r["bounds"]):
                assert check(env={r["env"]: v}).returncode == 0, (r, v)
            bad[r["env"]] = "loud"
        elif r["type"] == "address":
            bad[r["env"]] = "127.0.0.1:65536"
        elif r["type"] == "topic name":
            bad[r["env"]] = "no spaces"
            if "not empty" in r["bounds"]:
                res = check(env={r["env"]: ""})
                assert res.returncode == 1 and r["env"] in res.stderr, r
        else:
            assert r["type"] == "text" and r["bounds"] == "-", r
    for env in (low, high):
        res = check(env=env)
        assert res.returncode == 0, (env, res.stderr)
    res = check(env=bad)
    assert res.returncode == 1
    for name in bad:
        assert f"environment {name}:" in res.stderr, (name, res.stderr)


def provider_bounds():
    text = REFERENCE.read_text().split("## `[provider.NAME]`", 1)[1]
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^\| `(\w+)` \| (\d+) to (\d+)", text, re.M)}


@needs_bridge
def test_provider_bounds_are_what_check_config_accepts():
    bounds = provider_bounds()
    assert set(bounds) == {"deadline_ms", "max_body", "spool_after_ms"}, bounds
    for key, (lo, hi) in bounds.items():
        var = f"BRIDGE_PROVIDER_SHOPERTI_{key.upper()}"
        for value, ok in ((lo, True), (hi, True), (lo - 1, False), (hi + 1, False)):
            res = check(env={var: str(value)})
            if key == "spool_after_ms" and ok:  # checked against deadline_ms when spooling
                res = check(env={var: str(value), "BRIDGE_PROVIDER_SHOPERTI_DEADLINE_MS": "120000"})
            assert (res.returncode == 0) == ok, (var, value, res.stderr)


def test_producer_defaults_are_those_of_kafka_c():
    """Every default of kafka.c's array is in the [librdkafka] table, with its value
    where the code has a literal one; every property of the table is set in kafka.c."""
    src = (ROOT / "bridge" / "kafka.c").read_text()
    m = re.search(r"defaults\[\]\[2\] = \{(.*?)\n    \};", src, re.S)
    assert m, ("tests/style/test_docs.py reads the producer defaults from bridge/kafka.c's "
               "`defaults[][2]` array: update it with the code")
    code = dict(re.findall(r'\{"([a-z.]+)", ("[^"]*"|\w+)\}', m.group(1)))
    text = REFERENCE.read_text().split("## `[librdkafka]`", 1)[1]
    doc = dict(re.findall(r"^\| `([a-z.]+)` \| ([^|]*?) \|", text, re.M))
    assert "linger.ms" in code and "linger.ms" in doc
    missing = sorted(set(code) - set(doc))
    assert missing == [], f"bridge/kafka.c sets {missing}: add them to deploy/CONFIGURATION.md"
    for name, value in code.items():
        if value.startswith('"'):
            assert doc[name] == f"`{value[1:-1]}`", (name, doc[name], value)
    for name in doc:
        assert f'"{name}"' in src, f"deploy/CONFIGURATION.md lists {name}, which kafka.c never sets"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write_reference(sys.argv[2])
    else:
        sys.exit(__doc__)
