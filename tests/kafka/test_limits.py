"""Size limits on real Apache Kafka (three KRaft nodes of docker-compose.yml,
the brokers' default message.max.bytes and max.message.bytes: 1,048,588,
checked on the compressed batch): every body the door takes (max_body, 1 MiB)
is written, plain or incompressible, with the producer's zstd batches; a topic
whose max.message.bytes is smaller takes what compresses under it and
dead-letters the rest (reason record_too_large, its size, digest and first
64 KiB kept), answered 200 as a dead letter on every retry, never a failure;
the registry reports the small topic (webhook_bridge_topic_too_small). Without
compression, a body of max_body does not fit the brokers' default: dead-lettered,
not a retry loop."""
import hashlib
import json
import random
import time

import pytest

import harness
import kraft

SMALL = "webhooks.piriod.invoice.paid"   # max.message.bytes 65536
TOPIC = "webhooks.piriod.payment.created"
DL = "webhooks.deadletter"
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def cluster():
    kraft.require()
    with kraft.Cluster(overrides={"auto.create.topics.enable": "false"}, heap="-Xmx384m") as c:
        c.start()
        c.wait_ready()
        c.create_topics([TOPIC, DL])
        c.create_topics([SMALL], configs={"min.insync.replicas": "2",
                                          "max.message.bytes": "65536"})
        yield c


def body_of(size, event="payment.created", kind="plain", seed=1):
    """A Piriod body of exactly size bytes; kind "plain" pads with one letter,
    "random" with random printable ASCII (no escapes) and CJK characters:
    what compresses least in a JSON string."""
    base = json.dumps({"event": event, "object_id": f"obj_{kind}_{size}", "pad": ""},
                      separators=(",", ":")).encode()
    n = size - len(base)
    if kind == "plain":
        pad = b"x" * n
    else:
        rnd = random.Random(seed)
        alphabet = [c for c in map(chr, range(0x20, 0x7f)) if c not in '"\\']
        parts, left = [], n
        while left > 0:
            if left >= 3 and rnd.random() < 0.5:
                ch = chr(rnd.randrange(0x4E00, 0x9FFF)).encode()
            else:
                ch = rnd.choice(alphabet).encode()
            parts.append(ch)
            left -= len(ch)
        pad = b"".join(parts)
    body = base[:-2] + pad + b'"}'
    assert len(body) == size
    json.loads(body)
    return body


def post(bridge, body):
    t = time.monotonic()
    r = bridge.post("piriod", body, headers={"Content-Type": "application/json"}, timeout=30)
    return r, time.monotonic() - t


def readback(cluster, rec):
    m = harness.read_at(cluster.bootstrap, rec["topic"], rec["partition"], rec["offset"])
    return m, json.loads(m.value())


@pytest.mark.parametrize("kind", ["plain", "random"])
def test_a_body_of_max_body_is_written_with_the_default_limits(cluster, kind):
    body = body_of(MAX_BODY, kind=kind)
    with harness.Bridge(cluster.bootstrap) as bridge:
        bridge.wait_kafka_reachable(True, timeout=30)
        r, took = post(bridge, body)
        assert r.status_code == 200, r.text[:300]
        rec = r.json()
        assert rec["topic"] == TOPIC and "deadletter" not in rec, rec
        m, ev = readback(cluster, rec)
        assert ev["id"] == rec["id"] and json.dumps(ev["data"], ensure_ascii=False,
                                                     separators=(",", ":")).encode() == body
        print(f"\n  {kind} body of max_body ({len(body)} B): 200 in {took * 1000:.0f} ms, "
              f"record {len(m.value())} B (zstd batch under 1,048,588)")


def test_a_small_topic_takes_what_compresses_and_dead_letters_the_rest(cluster):
    plain = body_of(200 * 1024, event="invoice.paid")
    rough = body_of(200 * 1024, event="invoice.paid", kind="random", seed=7)
    before = harness.end_offsets(cluster.bootstrap, SMALL)
    with harness.Bridge(cluster.bootstrap) as bridge:
        bridge.wait_kafka_reachable(True, timeout=30)
        r, _ = post(bridge, plain)
        assert r.status_code == 200 and r.json()["topic"] == SMALL, r.text[:300]
        answers = [post(bridge, rough) for _ in range(3)]  # the provider's retries
        for r, took in answers:
            assert r.status_code == 200, r.text[:300]
            rec = r.json()
            assert rec["deadletter"] is True and rec["refused"] == "record_too_large", rec
            assert rec["topic"] == DL and rec["intended_topic"] == SMALL
            assert took < 5.0, took  # Piriod's deadline
        m, ev = readback(cluster, answers[0][0].json())
        assert harness.headers_of(m)["deadletter-reason"] == "record_too_large"
        assert ev["data"]["size"] == len(rough)
        assert ev["data"]["sha256"] == hashlib.sha256(rough).hexdigest()
        assert rough.startswith(ev["data"]["head"].encode())
        # the small topic holds only the plain body
        after = harness.end_offsets(cluster.bootstrap, SMALL)
        assert sum(after.values()) - sum(before.values()) == 1
        metrics = bridge.metrics()
        refused = metrics['webhook_bridge_refused_total{provider="piriod",reason="record_too_large"}']
        assert refused == 3
        assert not [k for k, v in metrics.items()
                    if k.startswith('webhook_bridge_requests_total{provider="piriod"') and
                    k.split('code="')[1][0] == "5" and v]
        # the registry knows the topic cannot take every body of max_body
        key = f'webhook_bridge_topic_too_small{{topic="{SMALL}",max_message_bytes="65536"}}'
        deadline = time.time() + 20
        while key not in bridge.metrics() and time.time() < deadline:
            time.sleep(0.5)
        assert bridge.metrics().get(key) == 1
        assert f'webhook_bridge_topic_too_small{{topic="{TOPIC}"' not in str(bridge.metrics())
        lines = [l for l in bridge.stdout_lines()
                 if l.get("msg", "").startswith("topic cannot take every body")]
        assert lines and lines[0]["topic"] == SMALL and lines[0]["max_message_bytes"] == 65536
        print(f"\n  small topic (65536): plain 200 KiB written, random 200 KiB dead-lettered "
              f"3 times out of 3 (200, never a failure), dead letter {len(m.value())} B")


def test_without_compression_max_body_is_a_dead_letter_not_a_retry_loop(cluster):
    body = body_of(MAX_BODY, kind="plain")
    with harness.Bridge(cluster.bootstrap,
                        env={"BRIDGE_RDKAFKA_COMPRESSION_TYPE": "none"}) as bridge:
        bridge.wait_kafka_reachable(True, timeout=30)
        r, took = post(bridge, body)
        assert r.status_code == 200, r.text[:300]
        rec = r.json()
        assert rec.get("refused") == "record_too_large" and rec["topic"] == DL, rec
        m, ev = readback(cluster, rec)
        assert ev["data"]["size"] == len(body)
        print(f"\n  compression none, body of max_body: dead letter in {took * 1000:.0f} ms "
              f"({len(m.value())} B)")
