"""webhook-bridge replay and deadletters, on the Kafka stand-in: Shoperti
configured with a wrong type pointer sends 200 webhooks to the dead-letter
topic; with the right mapping, `replay --provider shoperti` puts them in
their topic with the dead letters' ids and data; a second run replays 0;
--dry-run changes nothing and its table matches the real run; a run
SIGKILLed halfway, run again, leaves every id there at least once and says
how many may be there twice; the embedded cluster of a running bridge works
too."""
import signal
import subprocess
import time

import harness
import wbschema
from test_spool import records_of

DL = "webhooks.deadletter"
TOPIC = "webhooks.shoperti.orders.created"
WRONG = {"BRIDGE_PROVIDER_SHOPERTI_TYPE": "/kind"}  # Shoperti sends "topic"


def shoperti(i):
    return {"id": f"evt_replay_{i:04d}", "topic": "orders/created",
            "created_at": "2026-11-30T12:00:00Z", "data": {"id": f"ord_{i}", "n": i}}


def dead_letters(bridge, n, first=0):
    out = []
    for i in range(first, first + n):
        r = bridge.post("shoperti", shoperti(i))
        assert r.status_code == 200 and r.json()["deadletter"] is True, r.text
        out.append(r.json()["id"])
    return out


def with_dead_letters(kafka, partitions, n):
    """The topics (dead letters, Shoperti's orders), then n Shoperti
    webhooks through a bridge with the wrong type pointer: n dead letters."""
    kafka.cmd(f"topic {DL} {partitions}")
    kafka.cmd(f"topic {TOPIC} {partitions}")
    with harness.Bridge(kafka.bootstrap, env=WRONG) as b:
        return dead_letters(b, n)


def replay_env(bootstrap, **extra):
    return harness.replay_env(bootstrap, **extra)


def replay(bootstrap, *args, env=None, command="replay"):
    return harness.replay(bootstrap, *args, env=env, command=command)


def committed(bootstrap, group):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(DL, p) for p in harness.end_offsets(bootstrap, DL)]
        return {tp.partition: tp.offset for tp in c.committed(parts, timeout=10)}
    finally:
        c.close()


def test_replay_after_the_mapping_is_fixed(tmp_path):
    with harness.Standin() as kafka:
        ids = with_dead_letters(kafka, 3, 200)
        dls = [r for recs in records_of(kafka.bootstrap, DL).values() for r in recs]
        assert sorted(r["id"] for r in dls) == sorted(ids)
        ends_before = harness.end_offsets(kafka.bootstrap, TOPIC)

        listing = replay(kafka.bootstrap, command="deadletters")
        assert listing["read"] == 200 and listing["by_provider_and_reason"] == [
            {"provider": "shoperti", "reason": "event type missing (/kind)", "count": 200}], listing

        dry = replay(kafka.bootstrap, "--provider", "shoperti", "--dry-run")
        assert dry["would_pass"] == 200 and dry["by_topic"] == {TOPIC: 200}, dry
        assert dry["replayed"] == 0 and dry["still_failing"] == 0
        # the dry run changed nothing: no record, no committed offset
        assert harness.end_offsets(kafka.bootstrap, TOPIC) == ends_before
        assert all(o < 0 for o in committed(kafka.bootstrap, "webhook-bridge-replay").values())

        # the mapping is still wrong: everything still fails, is counted by reason, stays
        still = replay(kafka.bootstrap, "--provider", "shoperti", "--group", "still-wrong",
                       env=replay_env(kafka.bootstrap, **WRONG))
        assert still["replayed"] == 0 and still["still_failing_by_reason"] == {
            "event type missing (/kind)": 200}, still

        run = replay(kafka.bootstrap, "--provider", "shoperti")
        assert run["replayed"] == 200 and run["by_topic"] == dry["by_topic"], run
        assert run["still_failing"] == 0 and run["possibly_twice"] == 0
        out = [r for recs in records_of(kafka.bootstrap, TOPIC).values() for r in recs]
        by_id = {r["id"]: r for r in out}
        assert len(out) == 200 and set(by_id) == set(ids)
        for dl in dls:
            rec = by_id[dl["id"]]
            assert rec["data"] == dl["data"] and rec["receivedat"] == dl["receivedat"]
            assert rec["type"] == "shoperti.orders.created"
            assert rec["replayedfrom"].startswith(DL + "/")
            wbschema.validate_record(rec)

        again = replay(kafka.bootstrap, "--provider", "shoperti")
        assert again["read"] == 0 and again["replayed"] == 0, again
        assert sum(harness.end_offsets(kafka.bootstrap, TOPIC).values()) == 200


def test_an_interrupted_replay_resumes(tmp_path):
    with harness.Standin() as kafka:
        ids = with_dead_letters(kafka, 2, 200)
        kafka.cmd("rtt all 40")  # each batch takes a while: the kill lands halfway
        p = subprocess.Popen([harness.BRIDGE, "replay", "--provider", "shoperti", "--batch", "5"],
                             env=replay_env(kafka.bootstrap), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            done = sum(o for o in committed(kafka.bootstrap, "webhook-bridge-replay").values()
                       if o > 0)
            if done >= 60:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        first = sum(harness.end_offsets(kafka.bootstrap, TOPIC).values())
        assert 0 < first < 200, first
        kafka.cmd("rtt all 0")
        run = replay(kafka.bootstrap, "--provider", "shoperti")
        out = [r["id"] for recs in records_of(kafka.bootstrap, TOPIC).values() for r in recs]
        twice = len(out) - len(set(out))
        print(f"\ninterrupted after {first} records; the second run replayed {run['replayed']}, "
              f"said {run['possibly_twice']} possibly twice; in the topic: {len(out)} records, "
              f"{len(set(out))} ids, {twice} twice")
        assert set(out) == set(ids)
        assert twice <= run["possibly_twice"] <= 2 * 5  # at most one batch per partition
        assert replay(kafka.bootstrap, "--provider", "shoperti")["replayed"] == 0


def test_selection_by_reason_time_and_provider():
    """--reason takes a code (invalid_shape, unknown_topic) or a piece of the
    text; --since/--until the receive time; what still fails is counted by
    its reason now and left. (Dead letters of reason unknown_topic, which
    the mock's topic auto-creation never makes, are replayed on real Kafka:
    tests/kafka/test_faults.py.)"""
    with harness.Standin() as kafka:
        kafka.cmd(f"topic {DL} 1")
        kafka.cmd(f"topic {TOPIC} 1")
        with harness.Bridge(kafka.bootstrap, env=WRONG) as b:
            dead_letters(b, 3)
            for i in range(2):
                r = b.post("piriod", {"object_id": f"no_type_{i}"})
                assert r.status_code == 200 and r.json()["deadletter"] is True, r.text
        def selected(*args):
            return replay(kafka.bootstrap, "--dry-run", *args)["selected"]
        assert selected() == 5
        assert selected("--reason", "invalid_shape") == 5
        assert selected("--reason", "unknown_topic") == 0
        assert selected("--reason", "(/kind)") == 3
        assert selected("--provider", "piriod") == 2
        assert selected("--since", "2999-01-01") == 0
        assert selected("--until", "2999-01-01T00:00:00Z") == 5
        assert selected("--from-offset", "4") == 1
        run = replay(kafka.bootstrap, "--provider", "piriod")
        assert run["replayed"] == 0 and run["still_failing_by_reason"] == {
            "event type missing (/event)": 2}, run
        assert replay(kafka.bootstrap, "--provider", "piriod")["read"] == 0  # committed past them
        run = replay(kafka.bootstrap, "--group", "all")
        assert run["replayed"] == 3 and run["still_failing"] == 2, run


def test_replay_against_a_running_bridges_embedded_cluster():
    with harness.Bridge(None, env={"BRIDGE_PROVIDER_SHOPERTI_AUTH": "none", **WRONG}) as b:
        m = None
        deadline = time.time() + 10
        while m is None and time.time() < deadline:
            for line in b.stderr().splitlines():
                if "EMBEDDED KAFKA" in line and " at " in line:
                    m = line.rsplit(" at ", 1)[1].strip()
            time.sleep(0.1)
        assert m, b.stderr()
        dead_letters(b, 5)
        run = replay(m, "--provider", "shoperti")
        assert run["replayed"] == 5 and run["by_topic"] == {TOPIC: 5}, run
