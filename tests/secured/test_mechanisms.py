"""The bridge on a secured real Kafka 4.1.1 node (secured.py), once per
mechanism: SASL_SSL SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, and SSL with a client
certificate. Each: /readyz says Kafka is reachable and the authentication
gauge is 0; one webhook per provider (its fixture) answered 200 and read back
at its offset with the same id; an event type without a topic (auto-creation
off) dead-lettered within a second, which needs the topic registry on the
secured listener (without it every webhook waited the registry's 3 s); with
refuse_unsafe_topics and the default minimum of 3 replicas, the one-replica
topics are refused (the registry read their configuration); then `replay` and
`deadletters` on the same settings. The password is in no output."""
import json
import subprocess
import time

import pytest
import requests

import harness
import secured
import wbschema

FIXTURES = {"piriod": "piriod/payment-created.json", "shoperti": "shoperti/order-created.json",
            "bonifiq": "bonifiq/point-add.json"}
FAST_S = 1.0  # an answer's bound once the producer is connected (plaintext: 5-8 ms)


@pytest.fixture(scope="module")
def cluster():
    c = secured.start_cluster(extra_topics=[f"webhooks.deadletter.{m.lower()}"
                                            for m in secured.MECHANISMS])
    yield c
    c.stop()


def replay_cmd(command, ini_path, env, *args, timeout=60):
    """`webhook-bridge <command> --config ini ... --json` with env; (seconds, summary)."""
    full = harness.replay_env("unused", **env)
    del full["BRIDGE_KAFKA_BROKERS"]  # the file's
    t = time.monotonic()
    p = subprocess.run([harness.BRIDGE, command, "--config", ini_path, *args, "--json"],
                       env=full, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t
    for m in harness.SANITIZER_MARKERS:
        assert m not in p.stderr, p.stderr
    secured.secret_free(p.stdout, p.stderr)
    assert p.returncode == 0, f"{command} exited {p.returncode}:\n{p.stdout}{p.stderr[-3000:]}"
    return took, json.loads(p.stdout)


@pytest.mark.parametrize("mechanism", secured.MECHANISMS)
def test_bridge_on_secured_listener(cluster, mechanism, tmp_path, capsys):
    dl = f"webhooks.deadletter.{mechanism.lower()}"
    brokers, ini, env = secured.bridge_settings(cluster, mechanism, kafka={
        "deadletter_topic": dl, "min_replication_factor": 1, "min_insync_replicas": 1,
        "refuse_unsafe_topics": "true"})
    lines = []
    with harness.Bridge(brokers, env=env, config=ini) as b:
        b.wait_kafka_reachable(True, timeout=30)
        ready = requests.get(b.admin + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["kafka"] == "reachable", ready.text

        receipts = []
        for provider, fixture in FIXTURES.items():
            t = time.monotonic()
            r = b.post(provider, wbschema.fixture_bytes(fixture), timeout=30)
            took = time.monotonic() - t
            lines.append(f"{provider}: {r.status_code} in {1000 * took:.0f} ms")
            assert r.status_code == 200 and not r.json().get("deadletter"), r.text
            receipts.append(r.json())
        # once connected, every answer is quick (the registry answers too)
        for provider, fixture in FIXTURES.items():
            t = time.monotonic()
            r = b.post(provider, wbschema.fixture_bytes(fixture), timeout=30)
            took = time.monotonic() - t
            lines.append(f"{provider} again: {r.status_code} in {1000 * took:.0f} ms")
            assert r.status_code == 200, r.text
            receipts.append(r.json())
            assert took < FAST_S, lines
        got = harness.read_receipts(cluster.bootstrap, receipts, timeout=30)
        read_back = sum(1 for r in receipts if json.loads(
            got[(r["topic"], r["partition"], r["offset"])].value())["id"] == r["id"]) \
            if len(got) == len(receipts) else len(got)
        lines.append(f"records: {len(receipts)} answered 200, {read_back} read back at their "
                     f"offsets with the same id")
        assert read_back == len(receipts), lines

        t = time.monotonic()
        r = b.post("piriod", {"event": "brand.new.kind", "object_id": "o1"}, timeout=30)
        took = time.monotonic() - t
        lines.append(f"unknown event type: {r.status_code} in {1000 * took:.0f} ms")
        assert r.status_code == 200 and r.json()["deadletter"] is True, r.text
        assert r.json()["intended_topic"] == "webhooks.piriod.brand.new.kind", r.text
        assert r.json()["topic"] == dl and took < FAST_S, lines
        m = harness.read_at(cluster.bootstrap, dl, r.json()["partition"], r.json()["offset"])
        assert harness.headers_of(m)["deadletter-reason"] == "unknown_topic"

        m = b.metrics()
        assert m["webhook_bridge_kafka_reachable"] == 1
        assert m["webhook_bridge_kafka_authentication_failed"] == 0
        assert m['webhook_bridge_deadletters_total{provider="piriod",reason="unknown_topic"}'] == 1

    # Shoperti's type at a pointer its bodies lack: dead letters, for replay
    shoperti_dl = []
    wrong = dict(env, BRIDGE_PROVIDER_SHOPERTI_TYPE="/kind")
    with harness.Bridge(brokers, env=wrong, config=ini) as b:
        for i in range(5):
            r = b.post("shoperti", {"id": f"evt_{mechanism}_{i}", "topic": "orders/created",
                                    "data": {"id": f"ord_{i}"}}, timeout=30)
            assert r.status_code == 200 and r.json()["deadletter"] is True, r.text
            shoperti_dl.append(r.json()["id"])
        secured.secret_free(b.stderr(), open(b.stdout_path).read())

    # the registry read each topic's configuration: with the default minimum
    # of 3 replicas, these one-replica topics are refused
    strict = dict(env, BRIDGE_KAFKA_MIN_REPLICATION_FACTOR="3", BRIDGE_KAFKA_MIN_INSYNC_REPLICAS="2")
    with harness.Bridge(brokers, env=strict, config=ini) as b:
        statuses = []
        for _ in range(3):
            t = time.monotonic()
            r = b.post("piriod", {"event": "payment.created", "object_id": "thin"}, timeout=30)
            statuses.append((r.status_code, r.json().get("error"), round(time.monotonic() - t, 3)))
            assert r.status_code in harness.FAILURE_STATUSES and r.headers.get("Retry-After"), \
                statuses
            assert r.json()["error"] == "topic_unsafe", statuses
        lines.append(f"refuse_unsafe_topics, one-replica topic: {statuses}")
        assert b.metrics()["webhook_bridge_topics_unsafe"] >= 1
        secured.secret_free(b.stderr(), open(b.stdout_path).read())

    ini_path = tmp_path / "bridge.ini"
    ini_path.write_text(ini)
    took, listing = replay_cmd("deadletters", ini_path, env)
    lines.append(f"deadletters: {listing['read']} read in {took:.1f} s")
    assert listing["read"] == 6, listing
    took, done = replay_cmd("replay", ini_path, env, "--provider", "shoperti")
    lines.append(f"replay --provider shoperti: {done['replayed']} replayed in {took:.1f} s")
    assert done["replayed"] == 5 and done["by_topic"] == {"webhooks.shoperti.orders.created": 5}, done
    found = harness.find_ids(cluster.bootstrap, [
        {"id": i, "topic": "webhooks.shoperti.orders.created", "partition": p}
        for i in shoperti_dl for p in range(3)], timeout=30)
    assert sorted(found) == sorted(shoperti_dl), found
    took, again = replay_cmd("replay", ini_path, env, "--provider", "shoperti")
    assert again["replayed"] == 0, again
    with capsys.disabled():
        print(f"\n=== {mechanism}\n  " + "\n  ".join(lines), flush=True)
