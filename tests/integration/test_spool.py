"""The spool, on the Kafka stand-in: with every broker down, Piriod (spool
on) is answered 200 "spooled" within its deadline; the bridge SIGKILLed and
restarted with Kafka back replays every spooled record, in order, with the
id it was answered with; an original acknowledged after it was spooled takes
its copy out (no duplicate); a full spool is a failure answer, never a 200;
a provider with the spool off is unchanged."""
import json
import os
import signal
import time

import harness

KEY = "pay_ordered"


def spool_env(tmp, **extra):
    env = {"BRIDGE_SPOOL_DIR": str(tmp / "spool"),
           "BRIDGE_PROVIDER_PIRIOD_SPOOL": "on",
           "BRIDGE_PROVIDER_PIRIOD_SPOOL_AFTER_MS": "400"}
    env.update(extra)
    return env


def piriod(i):
    return {"event": "payment.created", "object_id": KEY, "n": i}


def warm(bridge):
    """A fresh producer's first record waits for its producer id (about a
    second, past spool_after_ms): spooled, then replayed. Once a record gets
    its offset in time and the spool is empty, the test starts."""
    for _ in range(20):
        r = bridge.post("piriod", {"event": "payment.created", "object_id": "warm"})
        assert r.status_code == 200, r.text
        if "offset" in r.json():
            break
    wait_metric(bridge, "webhook_bridge_spool_records", 0)


def wait_metric(bridge, name, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if bridge.metrics().get(name) == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never {want}: {bridge.metrics().get(name)}")


def records_of(bootstrap, topic):
    """Every record of topic, by partition, in offset order."""
    out = {}
    ends = harness.end_offsets(bootstrap, topic)
    c = harness.consumer(bootstrap)
    try:
        from confluent_kafka import TopicPartition
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        want = sum(ends.values())
        got = 0
        deadline = time.time() + 30
        while got < want and time.time() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                out.setdefault(m.partition(), []).append(json.loads(m.value()))
                got += 1
    finally:
        c.close()
    return out


def test_brokers_down_spooled_then_sigkill_then_replayed_in_order(tmp_path):
    with harness.Standin() as kafka:
        env = spool_env(tmp_path)
        b = harness.Bridge(kafka.bootstrap, env=env)
        try:
            b.wait_kafka_reachable(True)
            warm(b)
            first = b.post("piriod", piriod(0))
            assert first.status_code == 200 and "offset" in first.json()
            before = b.metrics()['webhook_bridge_spooled_total{provider="piriod"}']
            kafka.cmd("down all")
            answers = []
            for i in range(1, 21):
                t = time.monotonic()
                r = b.post("piriod", piriod(i), timeout=10)
                answers.append((r.status_code, r.json(), time.monotonic() - t))
            # Shoperti does not spool: a failure answer, as before
            r = b.post("shoperti", {"id": "evt_s1", "topic": "orders/created", "data": {"id": "o"}},
                       timeout=20)
            assert r.status_code == 503, r.text
            m = b.metrics()
            assert m["webhook_bridge_spool_records"] == 20
            assert m['webhook_bridge_spool_provider_records{provider="piriod"}'] == 20
            assert not any(k.startswith("webhook_bridge_spool_provider_records{provider=\"shoperti")
                           for k in m)  # it does not spool
            assert m['webhook_bridge_spooled_total{provider="piriod"}'] - before == 20
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait()
        finally:
            b._out.close()
            b._err.close()
        for status, body, took in answers:
            assert status == 200 and body["spooled"] is True and "offset" not in body, body
            assert took < 5.0, took  # Piriod gives up at 6 s
        # the first was the slow one (spool_after_ms); the next went to the spool at once
        assert answers[0][2] >= 0.4 and all(t < 0.4 for _, _, t in answers[1:]), answers
        ids = [body["id"] for _, body, _ in answers]
        kafka.cmd("up all")
        with harness.Bridge(kafka.bootstrap, env=env) as b2:
            wait_metric(b2, "webhook_bridge_spool_records", 0)
            assert b2.metrics()["webhook_bridge_spool_replayed_total"] == 20  # since its start
            # new records of Piriod come after the replayed ones
            r = b2.post("piriod", piriod(21))
            assert r.status_code == 200 and "offset" in r.json(), r.text
            parts = records_of(kafka.bootstrap, "webhooks.piriod.payment.created")
            seen = [rec for recs in parts.values() for rec in recs if rec["data"]["object_id"] == KEY]
            # one key, one partition: in the order they were received
            assert len(parts) >= 1
            in_order = [rec["data"]["n"] for rec in seen]
            assert in_order == list(range(22)), in_order
            assert [rec["id"] for rec in seen[1:21]] == ids
    b.tmp.cleanup()


def test_an_original_acknowledged_after_spooling_is_not_replayed(tmp_path):
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap,
                                                    env=spool_env(tmp_path)) as b:
        b.wait_kafka_reachable(True)
        warm(b)
        assert b.post("piriod", piriod(0)).status_code == 200
        replayed = b.metrics()["webhook_bridge_spool_replayed_total"]
        kafka.cmd("rtt all 1500")  # acks after spool_after_ms (400), before the deadline
        r = b.post("piriod", piriod(1), timeout=10)
        assert r.status_code == 200 and r.json()["spooled"] is True, r.text
        kafka.cmd("rtt all 0")
        wait_metric(b, "webhook_bridge_spool_records", 0)
        assert b.metrics()["webhook_bridge_spool_replayed_total"] == replayed
        parts = records_of(kafka.bootstrap, "webhooks.piriod.payment.created")
        ns = [rec["data"]["n"] for recs in parts.values() for rec in recs
              if rec["data"]["object_id"] == KEY]
        assert sorted(ns) == [0, 1], ns  # no duplicate


def fill_the_spool(bridge, n, pad):
    """With Kafka down, n padded Piriod webhooks: (the 200 receipts, the
    failure answers as (status, body)). Every 200 is spooled, and there is
    at least one of each; every failure is spool_full from the rotation."""
    answers = []
    for i in range(n):
        r = bridge.post("piriod", {**piriod(i + 1), "pad": pad}, timeout=10)
        answers.append((r.status_code, r.json()))
    spooled = [a for s, a in answers if s == 200]
    failed = [(s, a) for s, a in answers if s != 200]
    assert spooled and all(a.get("spooled") is True for a in spooled), answers[:3]
    assert failed and all(s in harness.FAILURE_STATUSES and a.get("error") == "spool_full"
                          for s, a in failed), failed[:3]
    return spooled, failed


def test_a_full_spool_is_a_failure_answer(tmp_path):
    env = spool_env(tmp_path, BRIDGE_SPOOL_MAX_BYTES="65536")
    big = "x" * 20000
    with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, env=env) as b:
        b.wait_kafka_reachable(True)
        warm(b)
        kafka.cmd("down all")
        spooled, failed = fill_the_spool(b, 5, big)
        assert len(spooled) >= 2
        assert b.metrics()["webhook_bridge_spool_bytes"] <= 65536
        kafka.cmd("up all")
        wait_metric(b, "webhook_bridge_spool_records", 0)


def test_a_damaged_record_is_moved_aside_and_the_others_replayed(tmp_path):
    """A record altered on disk (its checksum no longer matches) is never
    produced: moved aside to table corrupt, with a log line and the metric;
    the records around it are replayed, and the provider is back on the
    direct path (its next record gets an offset)."""
    import sqlite3

    env = spool_env(tmp_path)
    with harness.Standin() as kafka:
        b = harness.Bridge(kafka.bootstrap, env=env)
        b.wait_kafka_reachable(True)
        warm(b)
        kafka.cmd("down all")
        ids = []
        for i in range(1, 4):
            r = b.post("piriod", piriod(i), timeout=10)
            assert r.status_code == 200 and r.json()["spooled"] is True, r.text
            ids.append(r.json()["id"])
        b.kill()
        db = sqlite3.connect(tmp_path / "spool" / "spool.db")
        seqs = [row[0] for row in db.execute("SELECT seq FROM records ORDER BY seq")]
        assert len(seqs) == 3
        db.execute("UPDATE records SET value = CAST(replace(CAST(value AS TEXT), '\"n\": 2',"
                   " '\"n\": 7') AS BLOB) WHERE seq = ?", (seqs[1],))
        db.commit()
        db.close()
        kafka.cmd("up all")
        with harness.Bridge(kafka.bootstrap, env=env) as b2:
            wait_metric(b2, "webhook_bridge_spool_records", 0)
            m = b2.metrics()
            assert m["webhook_bridge_spool_corrupt_total"] == 1
            assert m["webhook_bridge_spool_replayed_total"] == 2
            r = b2.post("piriod", piriod(4))
            assert r.status_code == 200 and "offset" in r.json(), r.text
            logged = [l for l in b2.stdout_lines() if "moved aside" in l.get("msg", "")]
            assert len(logged) == 1 and logged[0]["seq"] == seqs[1], logged
        parts = records_of(kafka.bootstrap, "webhooks.piriod.payment.created")
        ns = [rec["data"]["n"] for recs in parts.values() for rec in recs
              if rec["data"]["object_id"] == KEY]
        assert ns == [1, 3, 4], ns  # 2 (altered into 7) never produced
        db = sqlite3.connect(tmp_path / "spool" / "spool.db")
        assert [row[0] for row in db.execute("SELECT seq FROM corrupt")] == [seqs[1]]
        db.close()


def test_a_full_disk_is_a_failure_answer_never_a_200(tmp_path):
    """ENOSPC: the spool on a 1 MiB tmpfs, most of it taken by a filler file
    (max_bytes far above it). Once the disk is full the answers are failures
    (spool_full), never a 200 without the fsync. Kafka back: the spooled
    records are produced, but the disk is too full to commit their removal;
    once the filler is deleted the removals go through (retried), the spool
    empties, and every 200 is in Kafka, none replayed twice."""
    import subprocess

    import pytest

    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        with open(mnt / "filler", "wb") as f:
            f.write(b"\0" * (600 * 1024))
        env = spool_env(tmp_path, BRIDGE_SPOOL_DIR=str(mnt / "spool"),
                        BRIDGE_SPOOL_MAX_BYTES=str(1 << 30))
        pad = "y" * 30000
        with harness.Standin() as kafka, harness.Bridge(kafka.bootstrap, env=env) as b:
            b.wait_kafka_reachable(True)
            warm(b)
            kafka.cmd("down all")
            spooled, failed = fill_the_spool(b, 40, pad)
            kafka.cmd("up all")
            wait_metric(b, 'webhook_bridge_spool_provider_records{provider="piriod"}', 0)
            time.sleep(2)
            stuck = b.metrics()["webhook_bridge_spool_records"]
            os.unlink(mnt / "filler")
            wait_metric(b, "webhook_bridge_spool_records", 0, timeout=30)
            replayed = b.metrics()["webhook_bridge_spool_replayed_total"]
            retried = sum(1 for l in b.stdout_lines() if "removals not committed" in l["msg"])
            # and the spool takes records again
            kafka.cmd("down all")
            r = b.post("piriod", piriod(100), timeout=10)
            assert r.status_code == 200 and r.json()["spooled"] is True, r.text
            kafka.cmd("up all")
            wait_metric(b, "webhook_bridge_spool_records", 0)
            parts = records_of(kafka.bootstrap, "webhooks.piriod.payment.created")
        count = {}
        for recs in parts.values():
            for rec in recs:
                count[rec["id"]] = count.get(rec["id"], 0) + 1
        missing = [a["id"] for a in spooled if a["id"] not in count]
        twice = [a["id"] for a in spooled if count.get(a["id"], 0) > 1]
        print(f"\nENOSPC: {len(spooled)} answered 200 spooled, {len(failed)} failures "
              f"(spool_full); with the disk full {stuck:.0f} acknowledged records could not be "
              f"removed ({retried} failed commits logged); after the filler went: replayed "
              f"{replayed:.0f}, missing {len(missing)}, twice {len(twice)}")
        assert not missing and not twice
        assert r.json()["id"] in count
    finally:
        subprocess.run(["umount", str(mnt)])
