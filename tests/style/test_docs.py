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


# ---------------------------------------------------------------- links

def markdown_files():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.md"], capture_output=True,
                         text=True).stdout.split()
    files = {ROOT / f for f in out}
    # files not committed yet are checked too (a new folder README)
    for d in (".", "deploy", "bridge", "schemas", "tests", "deploy/examples", "tests/bench"):
        files.update((ROOT / d).glob("*.md"))
    return sorted(f for f in files if "node_modules" not in f.parts and f.exists())


def strip_code(text):
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor of a heading."""
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    h = h.lower().replace("`", "")
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    text = re.sub(r"^(```|~~~).*?^\1", "", path.read_text(), flags=re.S | re.M)
    for m in re.finditer(r"^#{1,6} (.+?)\s*#*\s*$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    out.update(re.findall(r'<a (?:name|id)="([^"]+)"', text))
    return out


def links(path):
    for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", strip_code(path.read_text())):
        target = m.group(1)
        if not re.match(r"[a-z]+:", target):
            yield target


def test_slug_is_githubs():
    assert slug("HTTP/2 abuse and connection limits") == "http2-abuse-and-connection-limits"
    assert slug("Shoperti: no signature, confirmed by its API") == \
        "shoperti-no-signature-confirmed-by-its-api"
    assert slug("`[librdkafka]`: the producer") == "librdkafka-the-producer"


def test_relative_links_and_anchors_resolve():
    files = markdown_files()
    assert ROOT / "README.md" in files
    broken = []
    for f in files:
        for target in links(f):
            file_part, _, anchor = target.partition("#")
            dest = (f.parent / file_part).resolve() if file_part else f
            rel = f.relative_to(ROOT)
            if not dest.exists():
                broken.append(f"{rel}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{rel}: {target}: no heading with that anchor")
    assert broken == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Sub part\n\n[x](b.md) [y](#sub-part) [z](#nope)\n"
                                   "`[not](a link)`\n")
    assert list(links(tmp_path / "a.md")) == ["b.md", "#sub-part", "#nope"]
    assert anchors(tmp_path / "a.md") == {"top", "sub-part"}


# ---------------------------------------------------------------- commands

def section(text, title):
    m = re.search(rf"^## {re.escape(title)}.*?\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"no section '## {title}'"
    return m.group(1)


def code_blocks(text, langs=("sh", "")):
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
            if m.group(1) in langs]


def commands(block):
    """Shell lines of a block, continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in block.splitlines():
        if not cur and line.lstrip().startswith("#"):
            continue
        cur += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if cur:
                out.append(cur)
            cur = ""
    return out


README = ROOT / "README.md"


def test_the_two_commands_are_what_ci_and_the_image_run():
    text = README.read_text()
    block = code_blocks(section(text, "The two commands"))[0]
    assert [c.split()[0] for c in commands(block)] == ["./deploy/run-local.sh", "./tests/run"]
    for c in ("deploy/run-local.sh", "tests/run"):
        assert os.access(ROOT / c, os.X_OK), c
    assert re.search(r"^[^#]*tests/run", (ROOT / ".ci" / "run").read_text(), re.M)
    run_local = (ROOT / "deploy" / "run-local.sh").read_text()
    assert "install-deps.sh" in run_local and 'exec "$top/build/release/webhook-bridge" "$@"' in run_local
    # the compose stack's commands stay in the top README
    assert "docker compose up" in section(text, "Local stack")


def example_json(line):
    return json.loads(line.lstrip("# ").strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_bridge
@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_try_it_as_the_readme_says(tmp_path):
    """The top README's "Try it" on the embedded default: its curl commands get
    the receipts it shows, and its kcat command reads the record it shows."""
    text = section(README.read_text(), "Try it")
    block = code_blocks(text)[0]
    lines = block.splitlines()
    record = json.loads("".join(code_blocks(text, ("json",))[0].split("\n")))
    port, admin = free_port(), free_port()
    log = open(tmp_path / "bridge.err", "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_LISTEN=f"127.0.0.1:{port}", BRIDGE_ADMIN_LISTEN=f"127.0.0.1:{admin}",
               BRIDGE_LOG_LEVEL="warn")
    proc = subprocess.Popen([BRIDGE], env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    try:
        bootstrap = None
        for _ in range(300):
            log.seek(0)
            m = re.search(r"EMBEDDED KAFKA \(in memory, not durable\) at (\S+)", log.read())
            if m:
                bootstrap = m.group(1)
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1)
                    break
                except OSError:
                    pass
            assert proc.poll() is None, "the bridge exited"
            time.sleep(0.1)
        assert bootstrap, "the bridge never said where its embedded Kafka is"
        assert lines[0].strip().startswith("./deploy/run-local.sh")
        assert "NOTHING IS DURABLE" in lines[1] and "bootstrap" in lines[1]
        receipts = []
        for i, c in enumerate(commands(block)):
            if c.startswith("curl"):
                c = c.replace("localhost:8080", f"127.0.0.1:{port}")
                out = subprocess.run(["bash", "-c", c], cwd=ROOT, capture_output=True, text=True,
                                     timeout=30)
                assert out.returncode == 0, (c, out.stderr)
                receipts.append(json.loads(out.stdout))
            elif c.startswith("kcat"):
                readme_bootstrap = re.search(r"-b (\S+)", c).group(1)
                c = c.replace(readme_bootstrap, bootstrap.split(",")[0])
                out = subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=60)
                assert out.returncode == 0, (c, out.stderr)
                kcat = out.stdout
        shown = [example_json(l) for l in lines if l.startswith("# {\"id\"")]
        assert len(receipts) == 2 and shown
        for got, want in zip(receipts, shown):
            assert set(got) == set(want) and got["type"] == want["type"], (got, want)
            assert got["topic"] == want["topic"]
        assert receipts[1]["type"].startswith("bonifiq.")
        # the kcat format '%k %h\n%s\n': the key and headers, then the value
        key_line, value = kcat.strip().split("\n", 1)
        assert key_line.startswith(record["subject"] + " ")
        assert "content-type=application/cloudevents+json; charset=utf-8" in key_line
        got = json.loads(value)
        assert set(got) == set(record)
        for k in ("specversion", "source", "type", "subject", "datacontenttype", "provider",
                  "providerevent", "data"):
            assert got[k] == record[k], k
        assert got["id"] == receipts[0]["id"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def doc_commands():
    for f in markdown_files():
        for block in code_blocks(f.read_text(), ("sh", "")):
            for c in commands(block):
                yield f, c


def test_curl_examples_send_what_exists():
    seen = 0
    providers = {"piriod", "shoperti", "bonifiq", "acme"}
    for f, c in doc_commands():
        if not c.startswith("curl") or "/webhooks/" not in c:
            continue
        seen += 1
        argv = shlex.split(c.replace("$", ""))
        path = next(a for a in argv if "/webhooks/" in a).split("/webhooks/", 1)[1]
        assert path.split("/")[0] in providers, (f, c)
        for i, a in enumerate(argv):
            if a == "--data-binary" and argv[i + 1].startswith("@"):
                assert (ROOT / argv[i + 1][1:]).exists(), (f, c)
            if a == "-d" or (a == "--data-binary" and argv[i + 1].startswith("{")):
                json.loads(argv[i + 1])
            if a == "-H":
                assert re.fullmatch(r"[A-Za-z-]+: .+", argv[i + 1]), (f, c)
    assert seen >= 8, seen


@needs_bridge
def test_options_given_to_the_binary_exist():
    helps = {sub: run(*([sub] if sub else []), "--help").stdout
             for sub in ("", "replay", "deadletters")}
    seen = 0
    for f in markdown_files():
        text = re.sub(r"^(```|~~~).*?^\1", "", f.read_text(), flags=re.S | re.M)
        spans = re.findall(r"`(webhook-bridge [^`]*)`", text)
        for block in code_blocks(f.read_text(), ("sh", "")):
            for c in commands(block):
                # the binary as the program run (a path's last part), not a
                # word that names it as another tool's argument (--compare X=bin)
                words = c.split()
                for i, w in enumerate(words):
                    if "=" not in w and (w == "webhook-bridge" or w.endswith("/webhook-bridge")):
                        spans.append(" ".join(["webhook-bridge", *words[i + 1:]]))
                        break
        for cmd in spans:
            words = cmd.split()
            sub = words[1] if len(words) > 1 and words[1] in ("replay", "deadletters") else ""
            for w in words[1:]:
                if w.startswith("--"):
                    seen += 1
                    assert w.split("=")[0] in helps[sub], (f.name, cmd, w)
    assert seen >= 10, seen


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write_reference(sys.argv[2])
    else:
        sys.exit(__doc__)
