"""Refusals for good, on the Kafka stand-in: a record Kafka refuses the same
way on every retry (too large, invalid, a topic the bridge may not write, a
policy) is dead-lettered once with its reason and answered as a dead letter,
never a failure the provider would repeat; every body the door takes fits the
producer; a spooled record refused for good leaves the spool for the
dead-letter topic and the records behind it go on; a configuration whose
producer cannot take max_body is refused at start."""
import hashlib
import json
import subprocess
import time

import pytest

import harness

PIRIOD = {"event": "payment.created", "object_id": "pay_refused"}
TOPIC = "webhooks.piriod.payment.created"
DL = "webhooks.deadletter"


def read_receipt(bootstrap, rec):
    m = harness.read_at(bootstrap, rec["topic"], rec["partition"], rec["offset"])
    return m, json.loads(m.value())


def records_after(bootstrap, topic, before):
    """Every record of topic past the offsets before ({partition: offset}),
    by partition in offset order, as decoded CloudEvents."""
    from confluent_kafka import TopicPartition
    ends = harness.end_offsets(bootstrap, topic)
    want = sum(n - before.get(p, 0) for p, n in ends.items())
    out = []
    c = harness.consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, before.get(p, 0)) for p in ends])
        deadline = time.time() + 30
        while len(out) < want and time.time() < deadline:
            for m in c.consume(500, 0.5):
                if not m.error():
                    out.append((m.partition(), m.offset(), json.loads(m.value())))
    finally:
        c.close()
    return [ev for _, _, ev in sorted(out, key=lambda x: (x[0], x[1]))]


def padded(size, unit="x"):
    """A Piriod body of exactly size bytes: its "pad" string holds unit (JSON
    string text, escapes included) repeated, then "x"s to the byte."""
    base = json.dumps(dict(PIRIOD, pad=""), separators=(",", ":")).encode()
    n = size - len(base)
    u = unit.encode()
    pad = u * (n // len(u)) + b"x" * (n % len(u))
    body = base[:-2] + pad + b'"}'
    assert len(body) == size, (len(body), size)
    json.loads(body)
    return body


@pytest.mark.parametrize("code,reason", [
    (10, "record_too_large"),             # MSG_SIZE_TOO_LARGE
    (18, "record_too_large"),             # RECORD_LIST_TOO_LARGE
    (87, "invalid_record"),               # INVALID_RECORD
    (17, "invalid_topic"),                # TOPIC_EXCEPTION
    (29, "topic_authorization_failed"),   # TOPIC_AUTHORIZATION_FAILED
    (44, "policy_violation"),             # POLICY_VIOLATION
])
def test_a_refusal_for_good_is_dead_lettered_once_never_a_failure(code, reason):
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap) as bridge:
        bridge.wait_ready()
        assert bridge.post("piriod", PIRIOD).status_code == 200
        before = harness.end_offsets(kafka.bootstrap, TOPIC)
        kafka.cmd(f"err 1 {code}")
        r = bridge.post("piriod", PIRIOD)
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["deadletter"] is True and rec["refused"] == reason, rec
        assert rec["topic"] == DL and rec["intended_topic"] == TOPIC, rec
        assert rec["type"] == "piriod.deadletter"
        m, ev = read_receipt(kafka.bootstrap, rec)
        headers = harness.headers_of(m)
        assert headers["deadletter-reason"] == reason, headers
        assert headers["intended-topic"] == TOPIC
        assert ev["id"] == rec["id"] and ev["deadletterreason"].startswith(reason + ": ")
        assert ev["data"] == PIRIOD  # small: kept whole
        # once: the refused record was not written, and not tried again
        assert harness.end_offsets(kafka.bootstrap, TOPIC) == before
        metrics = bridge.metrics()
        counts = {k: v for k, v in metrics.items() if k.startswith("webhook_bridge_refused_total") and v}
        print("refused:", counts)
        assert counts == {f'webhook_bridge_refused_total{{provider="piriod",reason="{reason}"}}': 1}
        assert metrics['webhook_bridge_deadletters_total{provider="piriod",reason="refused"}'] == 1
        # the producer goes on (a topic authorization refusal holds its topic
        # until the next metadata refresh, 2 s)
        deadline = time.time() + 10
        while True:
            r = bridge.post("piriod", PIRIOD)
            assert r.status_code == 200, r.text
            if "deadletter" not in r.json() or time.time() > deadline:
                break
            time.sleep(0.5)
        assert r.json()["topic"] == TOPIC, r.text


def test_a_refused_large_record_keeps_what_fits_with_its_size_and_digest():
    body = padded(300 * 1024, "é€\\\"\\\\")
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap) as bridge:
        bridge.wait_ready()
        assert bridge.post("piriod", PIRIOD).status_code == 200
        kafka.cmd("err 1 10")
        r = bridge.post("piriod", body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["refused"] == "record_too_large", rec
        m, ev = read_receipt(kafka.bootstrap, rec)
        data = ev["data"]
        raw = body
        assert data["truncated"] is True and data["size"] == len(raw), {k: data[k] for k in ("size",)}
        assert data["sha256"] == hashlib.sha256(raw).hexdigest()
        head = data["head"].encode()
        assert 60 * 1024 < len(head) <= 64 * 1024 and raw.startswith(head), len(head)
        assert len(m.value()) < 64 * 1024 * 6 + 4096
        print(f"refused record: body {len(raw)} B, dead letter {len(m.value())} B")


@pytest.mark.parametrize("filler", ["x", "\\\"\\\\", "é", "\\u0000"])
def test_a_body_of_exactly_max_body_is_written(filler):
    """The producer's message.max.bytes is derived from max_body (librdkafka's
    own default, 1,000,000, refused a 1 MiB body at once, on every retry)."""
    max_body = 1024 * 1024
    body = padded(max_body, filler)
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap) as bridge:
        bridge.wait_ready()
        r = bridge.post("piriod", body)
        assert r.status_code == 200, r.text[:300]
        rec = r.json()
        assert rec["topic"] == TOPIC and "deadletter" not in rec, rec
        m, ev = read_receipt(kafka.bootstrap, rec)
        assert ev["id"] == rec["id"] and ev["data"] == json.loads(body)
        print(f"max_body body ({filler!r}): record {len(m.value())} B")
        r = bridge.post("piriod", body + b" ")
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large", r.text


def test_a_spooled_record_refused_for_good_leaves_the_spool(tmp_path):
    """Twelve records spooled while Kafka is down (keys spread over the
    brokers); the first produce request after the brokers come back is
    refused for good: its records leave the spool as dead letters, the rest
    are written, each exactly once, and the spool empties."""
    env = {"BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
           "BRIDGE_PROVIDER_PIRIOD_SPOOL": "on",
           "BRIDGE_PROVIDER_PIRIOD_SPOOL_AFTER_MS": "400"}
    # the originals time out (message.timeout.ms, the longest deadline) before
    # the brokers come back: what is produced then is the spool's replay
    for p in ("PIRIOD", "SHOPERTI", "BONIFIQ"):
        env[f"BRIDGE_PROVIDER_{p}_DEADLINE_MS"] = "2000"
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, env=env) as bridge:
        bridge.wait_kafka_reachable(True)
        for _ in range(20):  # a first record past spool_after_ms is spooled: warm up
            r = bridge.post("piriod", PIRIOD)
            if "offset" in r.json():
                break
        deadline = time.time() + 30
        while bridge.metrics()["webhook_bridge_spool_records"] != 0 and time.time() < deadline:
            time.sleep(0.2)
        before = harness.end_offsets(kafka.bootstrap, TOPIC)
        before_dl = harness.end_offsets(kafka.bootstrap, DL)
        kafka.cmd("down all")
        spooled = []
        for i in range(12):
            r = bridge.post("piriod", dict(PIRIOD, object_id=f"pay_{i}", n=i), timeout=10)
            assert r.status_code == 200 and r.json()["spooled"] is True, r.text
            spooled.append(r.json()["id"])
        # every original timed out (message.timeout.ms 2 s, librdkafka's
        # timeout scan once a second, later on a busy machine): only the
        # spool holds them, and the next produce request is the replay's
        deadline = time.time() + 20
        while bridge.metrics()["webhook_bridge_producer_queue_messages"] != 0:
            assert time.time() < deadline, "the originals never timed out"
            time.sleep(0.2)
        kafka.cmd("err 1 10")  # the first produce request after this is refused for good
        kafka.cmd("up all")
        deadline = time.time() + 40
        while bridge.metrics()["webhook_bridge_spool_records"] != 0 and time.time() < deadline:
            time.sleep(0.2)
        m = bridge.metrics()
        assert m["webhook_bridge_spool_records"] == 0, m["webhook_bridge_spool_records"]
        refused = m['webhook_bridge_refused_total{provider="piriod",reason="record_too_large"}']
        written = [ev for ev in records_after(kafka.bootstrap, TOPIC, before)
                   if ev["id"] in spooled]
        dls = [ev for ev in records_after(kafka.bootstrap, DL, before_dl) if ev["id"] in spooled]
        in_topic = [ev["id"] for ev in written]
        in_dl = [ev["id"] for ev in dls]
        print(f"spooled {len(spooled)}: refused {refused:.0f}, dead-lettered {len(in_dl)}, "
              f"written {len(in_topic)}")
        print({k: v for k, v in m.items() if "kafka_errors_total" in k and v})
        print([l for l in bridge.stdout_lines() if l.get("level") in ("warn", "error")][-8:])
        assert len(in_dl) >= 1 and refused == len(in_dl)
        assert len(in_topic) >= 1  # the records behind the refused ones went on
        assert sorted(in_topic + in_dl) == sorted(spooled)  # each once, none lost
        assert all(ev["type"] == "piriod.deadletter" and ev["deadletterreason"].startswith(
            "record_too_large") for ev in dls)


def test_a_producer_limit_under_max_body_is_refused_at_start():
    config = "[librdkafka]\nmessage.max.bytes = 1000000\n"
    p = subprocess.run([harness.BRIDGE, "--check-config", "--config", "/dev/stdin"],
                       input=config, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "message.max.bytes" in p.stderr and "max_body" in p.stderr, p.stderr
    # lowering max_body makes it fit
    p = subprocess.run([harness.BRIDGE, "--check-config", "--config", "/dev/stdin"],
                       input=config + "[provider.piriod]\nmax_body = 900000\n"
                       "[provider.shoperti]\nmax_body = 900000\n[provider.bonifiq]\nmax_body = 900000\n",
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_a_max_body_over_the_default_queue_is_written_not_queue_full():
    """A provider's max_body over 32 MiB (the producer's default queue) once
    made every such body "queue full" on every retry: the queue is sized from
    max_body, and an operator's smaller one is refused at start."""
    size = 40 * 1024 * 1024
    env = {"BRIDGE_PROVIDER_PIRIOD_MAX_BODY": str(size)}
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, env=env) as bridge:
        bridge.wait_ready()
        r = bridge.post("piriod", padded(size), timeout=120)
        assert r.status_code == 200 and "deadletter" not in r.json(), r.text[:300]
    p = subprocess.run([harness.BRIDGE, "--check-config", "--config", "/dev/stdin"],
                       input="[librdkafka]\nqueue.buffering.max.kbytes = 32768\n",
                       env={"BRIDGE_PROVIDER_PIRIOD_MAX_BODY": str(size)},
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "queue.buffering.max.kbytes" in p.stderr, p.stderr
