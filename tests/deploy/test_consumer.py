"""The example consumer (deploy/consumer) against the Kafka stand-in.

Produces CloudEvents the way the bridge writes them (structured JSON, the
content-type header, key = subject), including a redelivered event with the
same source and id, a record that is not a CloudEvent, and a topic outside
the subscription; checks what the consumer prints, that it prints the
duplicate as a duplicate, and that its commits make a second run of the same
group start after what the first one processed."""
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import env_path, run  # noqa: E402

CT = "application/cloudevents+json; charset=utf-8"


def consumer_binary():
    explicit = env_path("WB_CONSUMER")
    if explicit:
        return explicit
    build = os.environ.get("WB_BUILD_DIR")
    if not build:
        pytest.skip("WB_BUILD_DIR not set (run through ctest) and no WB_CONSUMER")
    path = pathlib.Path(build) / "deploy" / "consumer" / "webhook-consumer"
    assert path.is_file(), f"{path} missing: the root CMakeLists.txt should build deploy/consumer"
    return path


@pytest.fixture(scope="module")
def consumer():
    return consumer_binary()


@pytest.fixture(scope="module")
def bootstrap():
    standin = env_path("WB_STANDIN")
    if standin is None:
        pytest.skip("WB_STANDIN (the Kafka stand-in) not set")
    proc = subprocess.Popen([str(standin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("BOOTSTRAP "), f"stand-in said {line!r}"
        yield line.split(None, 1)[1].strip()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cloudevent(provider, event, ident, subject=None, source=None):
    ce = {
        "specversion": "1.0",
        "id": ident,
        "source": source or f"https://webhook-bridge/{provider}",
        "type": f"{provider}.{event}",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {"object_id": subject, "note": "caf\u00e9 \u2603 \"quoted\""},
        "provider": provider,
        "providerevent": event,
        "receivedat": "2024-05-01T12:00:01Z",
    }
    if subject is not None:
        ce["subject"] = subject
    return ce


def produce(bootstrap, records):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
    })
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)

    for topic, key, value in records:
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False).encode()
        producer.produce(topic, key=key, value=value, headers=[("content-type", CT)],
                         on_delivery=report)
    assert producer.flush(30) == 0, "records still queued after 30 s"
    assert not errors, errors


LINE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse(stdout):
    """[(kind, {field: value})] for the record lines the consumer printed."""
    out = []
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind not in ("event", "duplicate", "invalid"):
            continue
        fields = {}
        for name, value in LINE.findall(rest):
            fields[name] = json.loads(value) if value.startswith('"') else value
        out.append((kind, fields))
    return out


def consume(consumer, bootstrap, group, *extra, idle_ms=3000):
    # The stand-in's group coordinator lets a group's next member in only
    # once the previous member's session timed out: keep that short.
    res = run([str(consumer), "--brokers", bootstrap, "--group", group,
               "--idle-exit-ms", str(idle_ms), "-X", "session.timeout.ms=6000",
               "-X", "heartbeat.interval.ms=500", *extra], timeout=90)
    assert res.returncode == 0, res.stderr
    return parse(res.stdout), res


def test_help_and_bad_options(consumer):
    res = run([str(consumer), "--help"])
    assert res.returncode == 0
    assert "--brokers" in res.stdout and "WEBHOOK_CONSUMER_GROUP" in res.stdout
    res = run([str(consumer), "--no-such-option"])
    assert res.returncode == 2
    res = run([str(consumer), "--dedup-size", "many"])
    assert res.returncode == 2 and "dedup-size" in res.stderr
    res = run([str(consumer), "-X", "no-equals-sign"])
    assert res.returncode == 2


def test_prints_dedups_and_commits(consumer, bootstrap):
    pay = "webhooks.piriod.payment.created"
    pts = "webhooks.bonifiq.point.add"
    first = cloudevent("piriod", "payment.created", "evt-1", subject="pay_1")
    produce(bootstrap, [
        (pay, b"pay_1", first),
        (pts, b"cust 7", cloudevent("bonifiq", "point.add", "0b3f-uuid", subject="cust 7")),
        # the provider did not get its 200 in time and sent the same event again
        (pay, b"pay_1", first),
        # same id, another source: a different event (CloudEvents: source + id)
        (pay, b"pay_2", cloudevent("piriod", "payment.created", "evt-1", subject="pay_2",
                                   source="https://other-bridge/piriod")),
        (pts, b"x", b"not json {"),
        ("other.topic", b"k", cloudevent("piriod", "payment.created", "evt-other")),
    ])

    records, res = consume(consumer, bootstrap, "svc-test", "--print-data")
    kinds = [k for k, _ in records]
    assert kinds.count("event") == 3, res.stdout
    assert kinds.count("duplicate") == 1, res.stdout
    assert kinds.count("invalid") == 1, res.stdout
    assert all(f["topic"].startswith("webhooks.") for _, f in records), "regex not applied"

    events = {(f["source"], f["id"]): f for k, f in records if k == "event"}
    e = events[("https://webhook-bridge/piriod", "evt-1")]
    assert e["type"] == "piriod.payment.created"
    assert e["subject"] == "pay_1" and e["key"] == "pay_1"
    assert e["topic"] == pay and e["partition"].isdigit() and e["offset"].isdigit()
    assert e["contenttype"] == CT
    b = events[("https://webhook-bridge/bonifiq", "0b3f-uuid")]
    assert b["subject"] == "cust 7" and b["key"] == "cust 7"  # quoted, space kept
    assert ("https://other-bridge/piriod", "evt-1") in events

    dup = next(f for k, f in records if k == "duplicate")
    assert dup["id"] == "evt-1" and dup["topic"] == pay
    # a retry of the same key lands on the same partition, after the original
    assert dup["partition"] == e["partition"] and int(dup["offset"]) > int(e["offset"])
    assert "reason" in next(f for k, f in records if k == "invalid")
    # --print-data: the CloudEvent itself follows its line, decoded intact
    values = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    assert any(v["data"]["note"] == "caf\u00e9 \u2603 \"quoted\"" for v in values)
    assert "5 record(s): 3 event(s), 1 duplicate(s), 1 invalid" in res.stderr

    # Same group again: offsets were committed, nothing is replayed...
    records, res = consume(consumer, bootstrap, "svc-test")
    assert records == [], res.stdout
    # ...and a new record is read from where the group left off.
    produce(bootstrap, [(pay, b"pay_3", cloudevent("piriod", "payment.created", "evt-3", "pay_3"))])
    records, res = consume(consumer, bootstrap, "svc-test")
    assert [(k, f["id"]) for k, f in records] == [("event", "evt-3")], res.stdout

    # Another service (its own group) sees every event from the start.
    records, res = consume(consumer, bootstrap, "svc-other", "--topics", pay)
    assert sorted(k for k, _ in records) == ["duplicate", "event", "event", "event"], res.stdout


def test_dedup_memory_is_bounded(consumer, bootstrap):
    topic = "webhooks.shoperti.orders.created"
    ids = ["o1", "o2", "o3", "o1", "o3"]
    # one key, so one partition and a fixed order
    produce(bootstrap, [(topic, b"store-1", cloudevent("shoperti", "orders.created", i, i))
                        for i in ids])
    # with room for 2 ids, o1 is forgotten once o2 and o3 came: its
    # redelivery counts as new, o3's does not
    records, res = consume(consumer, bootstrap, "svc-small", "--topics", topic,
                           "--dedup-size", "2")
    assert [(k, f["id"]) for k, f in records] == [
        ("event", "o1"), ("event", "o2"), ("event", "o3"), ("event", "o1"), ("duplicate", "o3")
    ], res.stdout
    # --dedup-size 0 turns it off
    records, res = consume(consumer, bootstrap, "svc-nodedup", "--topics", topic,
                           "--dedup-size", "0")
    assert [k for k, _ in records] == ["event"] * 5, res.stdout


def test_env_configuration(consumer, bootstrap):
    topic = "webhooks.piriod.invoice.paid"
    produce(bootstrap, [(topic, b"inv", cloudevent("piriod", "invoice.paid", "inv-1", "inv"))])
    env = dict(os.environ, WEBHOOK_CONSUMER_BROKERS=bootstrap, WEBHOOK_CONSUMER_GROUP="svc-env",
               WEBHOOK_CONSUMER_TOPICS=topic, WEBHOOK_CONSUMER_DEDUP_SIZE="5")
    start = time.monotonic()
    res = run([str(consumer), "--max-records", "1", "--idle-exit-ms", "20000"], env=env,
              timeout=60)
    assert res.returncode == 0, res.stderr
    assert [(k, f["id"]) for k, f in parse(res.stdout)] == [("event", "inv-1")]
    assert "group svc-env" in res.stderr
    assert time.monotonic() - start < 20, "--max-records did not stop it"
