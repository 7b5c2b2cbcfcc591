"""examples.py - drives the consuming services of deploy/examples/ against
records the real bridge wrote, for tests/examples/test_*.py (one per language).

    writes = write_records(bridge, bootstrap, nonce)  # every fixture of the three
                            # providers, a redelivery, a dead letter, a bounded-dedup run
    check_example(command, bootstrap, writes, "example-python")

The bridge writes to whatever Kafka `bootstrap` names: the tests start the
stand-in (kafka-standin, librdkafka's mock cluster), and WB_EXAMPLES_BROKERS
points them at a running cluster instead (real Kafka: its topics then hold
earlier runs' records too, so ids and topics carry a per-run nonce and only
this run's records are checked).

Each example prints one JSON line per record on stdout, the same shape in
every language: {"kind": "event"|"duplicate"|"deadletter"|"invalid",
"topic", "partition", "offset", "key", "id", "source", "type", "subject",
"time", "provider", "providerevent", "receivedat", "deadletterreason", "data"}
(a duplicate carries only topic/partition/offset/id/source/type).
"""
import datetime as dt
import json
import os
import pathlib
import re
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS / "lib"))
import harness  # noqa: E402
import wbschema as w  # noqa: E402

ROOT = w.ROOT
EXAMPLES = ROOT / "deploy" / "examples"
BUILD = pathlib.Path(os.environ.get("WB_BUILD_DIR") or ROOT / "build" / "examples") / "examples"
# the virtual environment deploy/install-deps.sh --test makes (tests/requirements.txt)
VENV = pathlib.Path(os.environ.get("WB_EXAMPLES_VENV") or ROOT / ".cache" / "venv")
ATTRIBUTES = ("id", "source", "type", "subject", "provider", "providerevent", "receivedat",
              "deadletterreason")
ID_MEMBER = {"bonifiq": "Uuid", "shoperti": "id"}  # the delivery id in the bodies
DEDUP_SIZE = 1  # the bounded-dedup run remembers one (source, id) pair
LATE_AFTER_S = 3  # how long after starting an example the new topic appears


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(problem):
    """Skips the test, or fails it under CI, where every toolchain is installed."""
    if in_ci():
        pytest.fail(f"{problem} (CI installs it: deploy/install-deps.sh --test)")
    pytest.skip(problem)


def run_tool(cmd, cwd, env=None, timeout=300):
    """Runs a build step; its output becomes the failure message."""
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    what = " ".join(map(str, cmd))
    assert r.returncode == 0, f"{what} exited {r.returncode}:\n{r.stdout}{r.stderr}"
    return r


# --------------------------------------------------------------- the records

def _with_nonce(raw, member, nonce):
    """The fixture's exact bytes, the first 8 characters of its delivery id
    (the string member `member`, a UUID or an event id) replaced by the nonce."""
    out, n = re.subn(rb'("' + member.encode() + rb'"\s*:\s*")[^"\\]{8}', rb"\g<1>" + nonce.encode(),
                     raw, count=1)
    assert n == 1, member
    return out


class Writes:
    """What the bridge answered for each body, and the records it wrote."""

    def __init__(self, nonce):
        self.nonce = nonce
        self.bridge = None  # the bridge that wrote them (still running)
        self.receipts = []  # the bridge's JSON answers, in order
        self.duplicate = None  # receipt of the redelivered BonifiQ event
        self.invalid = None  # (topic, partition, offset) of a record that is no CloudEvent
        self.bounded_topic = None
        self.bounded = []  # receipts of the bounded-dedup sequence, in order
        self.records = {}  # (topic, partition, offset) -> the record value, parsed
        self.keys = {}  # (topic, partition, offset) -> the Kafka key


def _bodies(nonce):
    """(provider, raw body) for every fixture, with ids made unique per run."""
    out = []
    for p in w.PROVIDERS:
        for f in w.FIXTURES[p]:
            raw = w.fixture_bytes(f)
            if p in ID_MEMBER:
                raw = _with_nonce(raw, ID_MEMBER[p], nonce)
            out.append((p, raw))
    return out


def write_records(bridge, bootstrap, nonce):
    """POSTs every provider fixture, one BonifiQ event a second time (a
    provider retry: same Uuid, so same source + id), a body of the wrong shape
    (a dead letter), and, to one Shoperti topic of its own and one key, the
    ids a, b, a, b, b; reads every record back. Also writes, itself, one
    record that is not a CloudEvent to the dead-letter topic (a poison pill)."""
    writes = Writes(nonce)
    writes.bridge = bridge

    def post(provider, raw):
        r = bridge.post(provider, raw)
        assert r.status_code == 200, (provider, r.status_code, r.text)
        writes.receipts.append(r.json())
        return r.json()

    bodies = _bodies(nonce)
    bodies.append(("piriod", w.fixture_bytes("invalid-shape/piriod-missing-event.json")))
    # in parallel: the first record of each new topic waits about 1 s for metadata
    answers = harness.Parallel(lambda b: bridge.post(*b), bodies, n=len(bodies)).results
    for (provider, _), r in zip(bodies, answers):
        assert not isinstance(r, Exception) and r.status_code == 200, (provider, r)
        writes.receipts.append(r.json())
    dead = writes.receipts[-1]
    assert dead.get("deadletter") is True, dead
    writes.duplicate = post(*next(b for b in bodies if b[0] == "bonifiq"))
    writes.invalid = produce_raw(bootstrap, dead["topic"], b"garbage", b"not a CloudEvent {")
    event = f"bounded/{nonce}"
    writes.bounded_topic = "webhooks.shoperti." + w.normalize_event(event)
    for ident in "ababb":
        body = {"id": f"{ident}-{nonce}", "topic": event, "data": {"id": "store-1"}}
        writes.bounded.append(post("shoperti", json.dumps(body).encode()))
    assert {r["topic"] for r in writes.bounded} == {writes.bounded_topic}

    got = harness.read_receipts(bootstrap, writes.receipts)
    assert len(got) == len(writes.receipts), "the bridge's records could not all be read back"
    for k, m in got.items():
        writes.records[k] = w.validate_record(m.value())
        writes.keys[k] = m.key().decode("utf-8")
    return writes


def produce_raw(bootstrap, topic, key, value):
    """Writes one record as is, without headers; returns its (topic, partition, offset)."""
    from confluent_kafka import Producer

    done = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    p.produce(topic, key=key, value=value, on_delivery=lambda err, m: done.append((err, m)))
    assert p.flush(30) == 0 and done and done[0][0] is None, done
    m = done[0][1]
    return (m.topic(), m.partition(), m.offset())


def where(r):
    return (r["topic"], r["partition"], r["offset"])


# ------------------------------------------------------------- the consumer

def check_rejects_bad_options(command):
    """A bad option or value: exit 2 with a message naming it, before any Kafka."""
    for args, word in ((["--dedup-size", "-1"], "dedup-size"),
                       (["--dedup-size", "many"], "dedup-size"),
                       (["--no-such-option"], "no-such-option")):
        r = subprocess.run([str(c) for c in [*command, *args]], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and word in r.stderr, (args, r.returncode, r.stderr[-2000:])

class Run:
    def __init__(self, lines, stderr, returncode, seconds):
        self.lines, self.stderr, self.returncode, self.seconds = lines, stderr, returncode, seconds

    def at(self, key):
        found = [l for l in self.lines if where(l) == key]
        assert len(found) == 1, f"{key}: {len(found)} line(s) for it\n{self.stderr}"
        return found[0]


def consume(command, want, timeout=120, env=None):
    """Starts the example, reads its lines until every (topic, partition,
    offset) of `want` was printed, then SIGTERMs it, as Kubernetes would.
    `want` may be a function, called once the example started, that returns them."""
    start = time.monotonic()
    errfile = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=errfile,
                            text=True, env=env)
    if callable(want):
        try:
            want = want()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    lines, pending = queue.Queue(), set(want)

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read)
    reader.start()
    printed, ended = [], False
    try:
        deadline = start + timeout
        while pending and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                ended = True
                break
            if line.startswith("{"):
                printed.append(json.loads(line))
                pending.discard(where(printed[-1]))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join()
    while not ended and (line := lines.get()) is not None:
        if line.startswith("{"):
            printed.append(json.loads(line))
    errfile.seek(0)
    err = errfile.read()
    errfile.close()
    print(f"{' '.join(map(str, command))}: {len(printed)} line(s), "
          f"exit {proc.returncode} after {time.monotonic() - start:.1f} s")
    assert not pending, (f"{len(pending)} record(s) never printed, e.g. {sorted(pending)[:3]}\n"
                         f"exit {proc.returncode}\n{err[-4000:]}")
    return Run(printed, err, proc.returncode, time.monotonic() - start)


def committed(bootstrap, group, keys):
    """{(topic, partition): the group's committed offset} for the partitions of keys."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = sorted({(t, p) for t, p, _ in keys})
        tps = c.committed([TopicPartition(t, p) for t, p in parts], timeout=20)
        return {(tp.topic, tp.partition): tp.offset for tp in tps}
    finally:
        c.close()


def _instant(text):
    """An RFC 3339 time as an aware datetime (fractions cut to microseconds)."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    frac = (m[2] or ".0")[:7]
    return dt.datetime.fromisoformat(m[1] + frac + ("+00:00" if m[3] == "Z" else m[3]))


# ------------------------------------------------------------------- checks

def check_example(command, bootstrap, writes, name, extra=(), sigterm_status=0,
                  refresh_args=None, brokers=None, env=None):
    """Everything one example must do, on records the bridge wrote:
    - run 1 (group <name>-<nonce>, the default pattern ^webhooks\\..*): every record of
      the three providers printed as an event with the attributes, key, time
      and data the bridge wrote; the dead letter as a dead letter; the record
      that is no CloudEvent as invalid, and the records after it read; the
      redelivered BonifiQ event and the second a, b, b of the bounded sequence
      as duplicates; after SIGTERM: exit 0, and the group's committed offsets
      are past every record it printed (committed after handling, and on leaving);
    - run 2 (a second group, the one bounded topic, --dedup-size 1): a, b, a,
      b are events and only the last b a duplicate: the store forgets.
    - run 3 (a third group, with refresh_args: the example's option for a
      short metadata refresh): subscribed to a pattern no topic matches yet,
      it reads the record the bridge then writes to a new topic.
    sigterm_status: the exit status after SIGTERM (the JVM's is 143 even when
    its shutdown hook finished cleanly). brokers: what the example connects to
    when not bootstrap (a secured listener; bootstrap is then the tests' own
    way in), env: the example's environment."""
    brokers = brokers or bootstrap
    want = [where(r) for r in writes.receipts] + [writes.invalid]
    group = f"{name}-{writes.nonce}"
    run = consume([*command, "--brokers", brokers, "--group", group, *extra], want, env=env)
    assert run.returncode == sigterm_status, run.stderr[-4000:]
    assert "left group" in run.stderr, run.stderr[-4000:]
    bounded = [where(r) for r in writes.bounded]
    duplicates = {where(writes.duplicate), *bounded[2:]}
    invalid = run.at(writes.invalid)
    assert invalid["kind"] == "invalid" and invalid["reason"], invalid
    for key in want[:-1]:
        line, record = run.at(key), writes.records[key]
        if key in duplicates:
            assert line["kind"] == "duplicate", line
            assert (line["source"], line["id"], line["type"]) == (
                record["source"], record["id"], record["type"])
            continue
        assert line["kind"] == ("deadletter" if w.is_deadletter(record) else "event"), line
        for name in ATTRIBUTES:
            assert line.get(name) == record.get(name), (key, name, line.get(name), record.get(name))
        assert line["key"] == writes.keys[key]
        assert _instant(line["time"]) == _instant(record["time"]), (line["time"], record["time"])
        assert line["data"] == record["data"], key
    offsets = committed(bootstrap, group, want)
    for t, p, o in want:
        assert offsets[(t, p)] > o, f"{t}/{p}: committed {offsets[(t, p)]}, printed offset {o}"

    run = consume([*command, "--brokers", brokers, "--group", group + "-bounded",
                   "--topics", writes.bounded_topic, "--dedup-size", str(DEDUP_SIZE), *extra],
                  bounded, env=env)
    assert run.returncode == sigterm_status, run.stderr[-4000:]
    kinds = [(run.at(k)["kind"], run.at(k)["id"].split("-")[0]) for k in bounded]
    assert kinds == [("event", "a"), ("event", "b"), ("event", "a"), ("event", "b"),
                     ("duplicate", "b")], kinds
    assert {where(l)[0] for l in run.lines} == {writes.bounded_topic}, "--topics not applied"

    if refresh_args is None:
        return
    # run 3: a pattern that matches no topic yet; the bridge then writes the
    # first record of a new event type, to a new topic: the example reads it
    event = f"late{writes.nonce}/created"
    topic = "webhooks.shoperti." + w.normalize_event(event)

    def write_late():
        time.sleep(LATE_AFTER_S)  # the example subscribed, to nothing yet
        r = writes.bridge.post("shoperti", json.dumps(
            {"id": f"late-{writes.nonce}", "topic": event, "data": {"id": "late-1"}}).encode())
        assert r.status_code == 200 and r.json()["topic"] == topic, r.text
        return [where(r.json())]

    run = consume([*command, "--brokers", brokers, "--group", group + "-late",
                   "--topics", "^" + re.escape(topic.rsplit(".", 1)[0]) + r"\..*",
                   *refresh_args, *extra], write_late, env=env)
    assert run.returncode == sigterm_status, run.stderr[-4000:]
    assert [(l["kind"], l["topic"], l["id"]) for l in run.lines] == [
        ("event", topic, f"late-{writes.nonce}")], run.lines


# ----------------------------------------------------------------- fixtures

def venv_python():
    exe = VENV / "bin" / "python"
    if not exe.is_file():
        unavailable(f"{exe} missing: run deploy/install-deps.sh --test")
    return exe


def _written(cluster):
    """(bootstrap, Writes, on_stand_in): a bridge has written every record the
    checks read, to the cluster WB_EXAMPLES_BROKERS names, else to a new
    stand-in made by cluster()."""
    if not harness.BRIDGE or not os.path.isfile(harness.BRIDGE):
        unavailable("WB_BRIDGE not set: run through ctest")
    nonce = uuid.uuid4().hex[:8]
    brokers = os.environ.get("WB_EXAMPLES_BROKERS")
    if brokers:
        with harness.Bridge(bootstrap=brokers) as bridge:
            yield brokers, write_records(bridge, brokers, nonce), False
        return
    with cluster() as standin, harness.Bridge(bootstrap=standin.bootstrap) as bridge:
        yield standin.bootstrap, write_records(bridge, standin.bootstrap, nonce), True


@pytest.fixture(scope="module")
def written():
    """On kafka-standin (see _written)."""
    yield from _written(harness.Standin)
