"""A few thousand concurrent webhooks: every 200 receipt names a record that
is in Kafka at its offset, with the id and type the receipt gives."""
import json

import harness
import loadgen


def bodies(n):
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(("/webhooks/piriod", json.dumps(
                {"event": "payment.created", "object_id": f"pay_{i}"}).encode()))
        elif i % 3 == 1:
            out.append(("/webhooks/shoperti", json.dumps(
                {"id": f"evt_{i}", "topic": "orders/created", "data": {"id": f"o{i}"}}).encode()))
        else:
            out.append(("/webhooks/bonifiq", json.dumps(
                {"Uuid": f"00000000-0000-4000-8000-{i:012d}", "Timestamp": "2024-03-01T13:16:11",
                 "Topic": 0, "TopicName": "Point_Add", "Payload": {"n": i}}).encode()))
    return out


def test_thousands_of_concurrent_requests_every_receipt_has_its_record():
    n = 3000
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, threads=2) as bridge:
        bridge.wait_ready()
        # warm the topics' metadata so that the burst measures the steady state
        for path, body in bodies(3):
            assert bridge.post(None, body, path=path).status_code == 200
        results = loadgen.burst(bridge.port, bodies(n), timeout=60)
        statuses = [s for s, _ in results]
        assert statuses.count(200) == n, {s: statuses.count(s) for s in set(statuses)}
        receipts = loadgen.receipts(results)
        got = harness.read_receipts(kafka.bootstrap, receipts)
        missing = [r for r in receipts if (r["topic"], r["partition"], r["offset"]) not in got]
        assert not missing, f"{len(missing)} receipts without a record, e.g. {missing[:3]}"
        for r in receipts:
            rec = json.loads(got[(r["topic"], r["partition"], r["offset"])].value())
            assert rec["id"] == r["id"] and rec["type"] == r["type"]
        # no two receipts name the same offset
        assert len({(r["topic"], r["partition"], r["offset"]) for r in receipts}) == n


def test_over_the_inflight_bound_answers_503_at_once_and_every_200_has_its_record():
    n = 600
    with harness.Standin() as kafka, harness.Bridge(
            kafka.bootstrap, env={"BRIDGE_MAX_INFLIGHT": "100",
                                  "BRIDGE_PROVIDER_PIRIOD_DEADLINE_MS": "25000",
                                  "BRIDGE_PROVIDER_SHOPERTI_DEADLINE_MS": "25000",
                                  # 3 s answers are slow, not dead, in this test (a connection set
                                  # up under them takes longer than the 3 s default)
                                  "BRIDGE_RDKAFKA_REQUEST_TIMEOUT_MS": "30000",
                                  "BRIDGE_RDKAFKA_SOCKET_CONNECTION_SETUP_TIMEOUT_MS": "30000"}) as bridge:
        bridge.wait_ready()
        for path, body in bodies(3):
            assert bridge.post(None, body, path=path).status_code == 200
        # acks slower than the burst takes to send: no slot frees up during it
        kafka.cmd("rtt all 3000")
        results = loadgen.burst(bridge.port, bodies(n), timeout=30)
        statuses = [s for s, _ in results]
        assert set(statuses) <= {200} | harness.FAILURE_STATUSES, set(statuses)
        failures = sum(1 for s in statuses if s in harness.FAILURE_STATUSES)
        assert statuses.count(200) <= 100 + 3 and failures >= n - 103
        for s, t in results:
            if s in harness.FAILURE_STATUSES:
                assert json.loads(t)["error"] == "overloaded"
        receipts = loadgen.receipts(results)
        got = harness.read_receipts(kafka.bootstrap, receipts)
        assert len(got) == len(receipts)
        kafka.cmd("rtt all 0")
