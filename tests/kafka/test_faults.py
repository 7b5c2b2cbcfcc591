"""The fault suite on real Apache Kafka: three KRaft nodes of docker-compose.yml
(replication factor 3, min.insync.replicas=2, topic auto-creation off), the
bridge (sanitizer build) under steady load from six senders, two per provider.
Each fault: every 200 read back at its offset with the same id (0 lost), no
200 while fewer than min.insync.replicas brokers are up, /readyz 200 through
every single-broker fault, Piriod never the same failing status 3 times in a
row, writes back without a restart. Each prints its table (tests/README.md, "The fault suite on real Kafka")."""
import json
import os
import pathlib
import time

import pytest

import faults
import harness
import kraft
import nginx

# To measure other settings (tests/README.md, "The fault suite on real Kafka"): WB_FAULTS_KAFKA='{"broker.
# session.timeout.ms": "9000"}' adds broker properties, WB_FAULTS_BRIDGE='{
# "BRIDGE_RDKAFKA_REQUEST_TIMEOUT_MS": "30000"}' bridge environment.
BRIDGE_ENV = json.loads(os.environ.get("WB_FAULTS_BRIDGE", "{}"))

# Node 2's client listener is reachable only through a fault proxy (its
# inter-broker and controller traffic is direct): the slow/black-holed path.
PROXIED = 2


@pytest.fixture(scope="module")
def cluster():
    kraft.require()
    # the preferred leaders take their partitions back within seconds (Kafka's
    # default checks every 300 s): each fault starts with leaders spread
    with kraft.Cluster(overrides={"auto.create.topics.enable": "false",
                                  "leader.imbalance.check.interval.seconds": "5",
                                  **json.loads(os.environ.get("WB_FAULTS_KAFKA", "{}"))},
                       proxied=[PROXIED]) as c:
        c.start()
        c.wait_ready()
        c.create_topics(faults.TOPICS)
        yield c


def heal(cluster):
    """Every node up and in sync, the proxy passing: the next fault starts clean."""
    for i in cluster.ids:
        if not cluster.running(i):
            cluster.start_node(i)
    for i in cluster.ids:
        cluster.resume(i)
        cluster.wait_node_up(i)
    cluster.proxy(PROXIED).passthrough()
    for t in faults.TOPICS:
        cluster.wait_isr(t, timeout=120)
    deadline = time.monotonic() + 60
    while True:
        _, counts = busiest_leader(cluster)
        if max(counts.values()) - min(counts.values()) <= len(faults.TOPICS):
            break
        assert time.monotonic() < deadline, f"leaders never spread again: {counts}"
        time.sleep(1)


@pytest.fixture
def bridge(cluster):
    heal(cluster)
    with harness.Bridge(cluster.bootstrap, env=BRIDGE_ENV) as b:
        b.wait_kafka_reachable(True, timeout=30)
        for provider in faults.PROVIDERS:  # metadata warm, producer id acquired
            deadline = time.time() + 30
            while b.post(provider, faults.body_of(provider, faults.random.Random())).status_code \
                    != 200:
                assert time.time() < deadline, f"{provider}: no 200 on a healthy cluster"
        yield b


def whole_cluster_down(cluster, load, seconds):
    """Every node SIGKILLed for seconds, then started; (t_down, t_back) as marked."""
    t_down = load.mark("SIGKILL all nodes")
    for i in cluster.ids:
        cluster.kill(i)
    time.sleep(seconds)
    t_back = load.mark("all restarted")
    for i in cluster.ids:
        cluster.start_node(i)
    for i in cluster.ids:
        cluster.wait_node_up(i)
    load.mark("all up")
    return t_down, t_back


def led_by(cluster, node):
    return {(t, p) for t in faults.TOPICS for p, leader in cluster.leaders(t).items()
            if leader == node}


def busiest_leader(cluster):
    counts = {i: 0 for i in cluster.ids}
    for t in faults.TOPICS:
        for leader in cluster.leaders(t).values():
            counts[leader] = counts.get(leader, 0) + 1
    return max(counts, key=counts.get), counts


def publish_text(capsys, name, text):
    """Prints a fault's table and keeps it for tests/run's log (build/test/faults)."""
    with capsys.disabled():
        print("\n" + text, flush=True)
    out = os.environ.get("WB_BUILD_DIR")
    if out:
        d = pathlib.Path(out) / "faults"
        d.mkdir(exist_ok=True)
        (d / f"{name}.txt").write_text(text + "\n")
    return text


def publish(capsys, res, extra=()):
    return publish_text(capsys, res.name.split(":")[0].replace(" ", "-"), res.table(extra))


def check_common(res, single_broker):
    assert res.wrong == 0 and res.lost == 0 and not res.misplaced, res.table()
    assert res.receipts > 0, res.table()
    if single_broker:
        assert res.readyz_counts().keys() == {200}, res.table()
    run, status = res.longest_fail_run("piriod")
    assert run < 3, f"Piriod got {run} x {status} in a row\n" + res.table()


def controller_note(cluster, node):
    leader = cluster.quorum_leader()
    return (f"node {node} was the active controller: the quorum elected another first"
            if leader == node else f"node {node} was not the active controller (node {leader})")


def busiest_leader_fault(cluster, bridge, capsys, name, what, fault, undo, node=None):
    """fault(node) on the leader of the most partitions (or node), for 15 s,
    then undo(node)."""
    busiest, counts = busiest_leader(cluster)
    node = busiest if node is None else node
    affected = led_by(cluster, node)
    note = controller_note(cluster, node)
    load = faults.Load(bridge.port, bridge.admin_port).start()
    time.sleep(5)
    t_fault = load.mark(f"{what} node {node}")
    fault(node)
    time.sleep(15)
    undo(node)
    t_back = load.mark(f"node {node} back")
    time.sleep(8)
    res = load.stop(cluster.bootstrap, f"{name}: node {node} (led {counts[node]} of "
                                        f"{sum(counts.values())} partitions) {what} 15 s")
    first = res.first_200(affected, t_fault)
    publish(capsys, res, [note, f"first 200 on its partitions: {first:.1f} s after the fault"
                          if first is not None else "no 200 on its partitions"])
    check_common(res, single_broker=True)
    assert first is not None and first < 30, res.table()
    assert res.oks_between(t_back, time.monotonic()), "no 200 after the node came back"


def test_leader_of_the_busiest_partitions_killed_and_restarted(cluster, bridge, capsys):
    def restart(node):
        cluster.start_node(node)
        cluster.wait_node_up(node)

    busiest_leader_fault(cluster, bridge, capsys, "leader-kill", "SIGKILL", cluster.kill, restart)


def test_active_controller_killed_and_restarted(cluster, bridge, capsys):
    """Combined nodes: the broker that dies is also the quorum's leader, so a
    new controller is elected before the dead broker can be fenced."""
    def restart(node):
        cluster.start_node(node)
        cluster.wait_node_up(node)

    busiest_leader_fault(cluster, bridge, capsys, "controller-kill", "SIGKILL", cluster.kill,
                         restart, node=cluster.quorum_leader())


def test_broker_paused_15s(cluster, bridge, capsys):
    busiest_leader_fault(cluster, bridge, capsys, "pause", "SIGSTOP", cluster.pause,
                         cluster.resume)


def test_two_of_three_killed_then_back(cluster, bridge, capsys):
    a, b = [i for i in cluster.ids if i != PROXIED][:2]
    load = faults.Load(bridge.port, bridge.admin_port).start()
    time.sleep(5)
    load.mark(f"SIGKILL node {a}")
    cluster.kill(a)
    time.sleep(5)
    t_two = load.mark(f"SIGKILL node {b}")
    cluster.kill(b)
    time.sleep(15)
    t_back = load.mark("both restarted")
    cluster.start_node(a)
    cluster.start_node(b)
    cluster.wait_node_up(a)
    cluster.wait_node_up(b)
    load.mark("both up")
    time.sleep(10)
    res = load.stop(cluster.bootstrap, f"two-down: nodes {a} and {b} SIGKILLed, then back")
    bad = res.oks_between(t_two + 0.2, t_back)
    publish(capsys, res, [f"200s while one broker of three was up: {len(bad)}"])
    check_common(res, single_broker=False)
    assert not bad, [(a.provider, a.receipt) for a in bad]
    assert res.oks_between(t_back, time.monotonic()), "no 200 after both came back"


def test_rolling_restart(cluster, bridge, capsys):
    load = faults.Load(bridge.port, bridge.admin_port).start()
    time.sleep(5)
    for i in cluster.ids:
        load.mark(f"SIGTERM node {i}")
        cluster.terminate(i)
        cluster.start_node(i)
        cluster.wait_node_up(i)
        for t in faults.TOPICS:
            cluster.wait_isr(t, timeout=120)
        load.mark(f"node {i} back in sync")
    time.sleep(5)
    res = load.stop(cluster.bootstrap, "rolling-restart: each node SIGTERMed (controlled "
                                        "shutdown) and back in sync, one after the other")
    publish(capsys, res)
    check_common(res, single_broker=True)


def test_all_three_down_then_up(cluster, bridge, capsys):
    load = faults.Load(bridge.port, bridge.admin_port).start()
    time.sleep(5)
    t_down, t_back = whole_cluster_down(cluster, load, 15)
    time.sleep(10)
    res = load.stop(cluster.bootstrap, "all-down: the three nodes SIGKILLed 15 s, then back")
    bad = res.oks_between(t_down + 0.2, t_back)
    unreachable = sum(1 for t, _, k in res.readyz if t_down + 3 < t < t_back and k == "unreachable")
    publish(capsys, res, [f"200s while every broker was down: {len(bad)}"])
    check_common(res, single_broker=False)
    assert not bad
    assert unreachable > 0, "/readyz never said Kafka was unreachable"
    assert res.readyz_counts().keys() == {200}, "readiness followed Kafka by default"
    assert res.oks_between(t_back, time.monotonic()), "no 200 after the cluster came back"


def test_slow_then_black_holed_path_to_one_broker(cluster, bridge, capsys):
    proxy = cluster.proxy(PROXIED)
    affected = led_by(cluster, PROXIED)
    load = faults.Load(bridge.port, bridge.admin_port).start()
    time.sleep(5)
    load.mark(f"node {PROXIED}'s path 300 ms slow")
    proxy.delay(300)
    time.sleep(10)
    t_hole = load.mark(f"node {PROXIED}'s path black-holed")
    proxy.blackhole()
    time.sleep(15)
    t_back = load.mark("path restored")
    proxy.passthrough()
    time.sleep(10)
    res = load.stop(cluster.bootstrap, f"slow-path: node {PROXIED} (led {len(affected)} "
                                        f"partitions) behind 300 ms, then a black hole 15 s")
    first = res.first_200(affected, t_back)
    publish(capsys, res, [f"first 200 on its partitions after the path came back: {first:.1f} s"
                          if first is not None else "no 200 on its partitions after"])
    check_common(res, single_broker=True)
    assert res.oks_between(t_hole, t_back), "nothing written while one path was black-holed"
    assert first is not None, res.table()


def test_unknown_event_type_is_a_dead_letter_within_a_second(cluster, bridge, capsys):
    """auto.create.topics.enable=false: the record goes to the dead-letter
    topic (reason unknown_topic, the intended topic in a header), answered as a
    dead letter within 1 s, every time."""
    lines = []
    for i in range(5):
        t = time.monotonic()
        r = bridge.post("piriod", {"event": "brand.new.kind", "object_id": f"obj_{i}"},
                        timeout=10)
        took = time.monotonic() - t
        lines.append(f"unknown type #{i + 1}: {r.status_code} in {1000 * took:.0f} ms")
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert receipt["deadletter"] is True and receipt["topic"] == "webhooks.deadletter"
        assert receipt["intended_topic"] == "webhooks.piriod.brand.new.kind"
        assert took < 1.0, lines
        m = harness.read_at(cluster.bootstrap, receipt["topic"], receipt["partition"],
                            receipt["offset"])
        rec = json.loads(m.value())
        h = harness.headers_of(m)
        assert rec["id"] == receipt["id"] and rec["type"] == "piriod.deadletter"
        assert rec["providerevent"] == "brand.new.kind"
        assert rec["deadletterreason"] == "unknown_topic: webhooks.piriod.brand.new.kind"
        assert rec["data"] == {"event": "brand.new.kind", "object_id": f"obj_{i}"}
        assert h["deadletter-reason"] == "unknown_topic"
        assert h["intended-topic"] == "webhooks.piriod.brand.new.kind"
    m = bridge.metrics()
    assert m['webhook_bridge_deadletters_total{provider="piriod",reason="unknown_topic"}'] == 5
    publish_text(capsys, "unknown-topic", "=== unknown-topic: an event type with no topic, "
                 "auto-creation off, five times\n  " + "\n  ".join(lines))


def test_topic_that_cannot_keep_the_promise_is_reported_and_can_be_refused(cluster, capsys):
    """A topic with one replica: a 200 for it is on one broker. Reported (log
    line, metric) on the first write; refused with a failure answer when
    refuse_unsafe_topics is set."""
    heal(cluster)
    cluster.create_topics(["webhooks.piriod.thin.kind"], rf=1,
                          configs={"min.insync.replicas": "1"})
    body = {"event": "thin.kind", "object_id": "o1"}
    with harness.Bridge(cluster.bootstrap) as b:
        r = b.post("piriod", body, timeout=10)
        assert r.status_code == 200, r.text
        # reported from its replication factor first, then with its
        # min.insync.replicas once the configuration's answer is in
        series = ('webhook_bridge_topic_unsafe{topic="webhooks.piriod.thin.kind",'
                  'replication_factor="1",min_insync_replicas="1"}')
        deadline = time.time() + 15
        while series not in b.metrics():
            assert time.time() < deadline, ("the unsafe topic was never reported",
                                            b.metrics().get("webhook_bridge_topics_unsafe"))
            time.sleep(0.2)
        m = b.metrics()
        assert m[series] == 1 and m["webhook_bridge_topics_unsafe"] == 1
        assert any(l["msg"].startswith("topic cannot keep the promise") and
                   l["topic"] == "webhooks.piriod.thin.kind" for l in b.stdout_lines())
        # the topics of the load are fine
        assert b.post("piriod", {"event": "payment.created", "object_id": "o2"}).status_code == 200
        assert b.metrics()["webhook_bridge_topics_unsafe"] == 1
    with harness.Bridge(cluster.bootstrap,
                        env={"BRIDGE_KAFKA_REFUSE_UNSAFE_TOPICS": "true"}) as b:
        statuses = [b.post("piriod", body, timeout=10) for _ in range(4)]
        assert all(r.status_code in harness.FAILURE_STATUSES and
                   r.json()["error"] == "topic_unsafe" for r in statuses), \
            [(r.status_code, r.text) for r in statuses]
        codes = [r.status_code for r in statuses]
        assert all(x != y for x, y in zip(codes, codes[1:])), codes
        assert b.post("piriod", {"event": "payment.created", "object_id": "o3"}).status_code == 200
    publish_text(capsys, "unsafe-topic", "=== unsafe-topic: a topic with one replica\n  reported "
                 f"(metric, log line); with refuse_unsafe_topics answered {codes}")


def run_behind_nginx(cluster, capsys, balance):
    """Three bridges behind nginx, the whole cluster down 15 s: every Piriod
    request fails for as long, the worst case for rotations lining up."""
    release = os.path.join(os.environ.get("WB_RELEASE_DIR", ""), "webhook-bridge")
    binary = release if os.path.isfile(release) else None  # 3 sanitized bridges: too slow here
    heal(cluster)
    bridges = []
    try:
        for _ in range(3):
            bridges.append(harness.Bridge(cluster.bootstrap, binary=binary))
        for b in bridges:
            b.wait_kafka_reachable(True, timeout=30)
            assert b.post("piriod", {"event": "payment.created", "object_id": "w"}).status_code \
                == 200
        with nginx.Nginx([b.port for b in bridges], balance) as lb:
            load = faults.Load(lb.port, bridges[0].admin_port).start()
            time.sleep(5)
            _, t_back = whole_cluster_down(cluster, load, 15)
            time.sleep(8)
            res = load.stop(cluster.bootstrap, f"nginx-{balance}: three bridges behind nginx "
                                                f"({balance}), the cluster down 15 s")
        runs = [res.longest_fail_run("piriod")]
        publish(capsys, res, [f"Piriod failure answers: "
                              f"{sum(1 for a in res.of('piriod') if a.status != 200)}, "
                              f"longest run of one status: {runs[0][0]} x {runs[0][1]}"])
        assert res.lost == 0 and res.wrong == 0 and not res.misplaced, res.table()
        assert res.oks_between(t_back, time.monotonic()), "no 200 after the cluster came back"
        return res
    finally:
        for b in bridges:
            b.close()
            b.tmp.cleanup()


def test_three_replicas_behind_nginx_round_robin(cluster, capsys):
    """Measured, not asserted: each replica rotates from a random place, and a
    round-robin balancer interleaves them (tests/README.md, "The fault suite on real Kafka")."""
    run_behind_nginx(cluster, capsys, "round-robin")


def test_three_replicas_behind_nginx_by_provider(cluster, capsys):
    """Each provider's webhooks to one replica (hash on the path): one bridge's
    rotation is what Piriod sees, so never the same failing status 3 times."""
    res = run_behind_nginx(cluster, capsys, "provider")
    run, status = res.longest_fail_run("piriod")
    assert run < 3, f"Piriod got {run} x {status} in a row\n" + res.table()


def test_unknown_topic_to_a_catch_all_topic_or_a_failure(cluster, capsys):
    """unknown_topic = <topic>: the event as it is, with an intended-topic
    header; unknown_topic = fail: a failure answer (rotated), at once."""
    heal(cluster)
    cluster.create_topics(["webhooks.piriod.other"])
    env = {"BRIDGE_PROVIDER_PIRIOD_UNKNOWN_TOPIC": "webhooks.piriod.other",
           "BRIDGE_PROVIDER_SHOPERTI_UNKNOWN_TOPIC": "fail"}
    with harness.Bridge(cluster.bootstrap, env=env) as b:
        t = time.monotonic()
        r = b.post("piriod", {"event": "brand.new.kind", "object_id": "c1"}, timeout=10)
        took_catch = time.monotonic() - t
        # a new bridge's first record: its producer id and the registry's first
        # answers included (494 ms in the last quiet run); the topic hold is 3 s
        assert r.status_code == 200 and took_catch < 2.0, (r.text, took_catch)
        receipt = r.json()
        assert receipt["topic"] == "webhooks.piriod.other" and "deadletter" not in receipt
        assert receipt["intended_topic"] == "webhooks.piriod.brand.new.kind"
        m = harness.read_at(cluster.bootstrap, receipt["topic"], receipt["partition"],
                            receipt["offset"])
        rec = json.loads(m.value())
        assert rec["type"] == "piriod.brand.new.kind" and rec["id"] == receipt["id"]
        assert harness.headers_of(m)["intended-topic"] == "webhooks.piriod.brand.new.kind"
        answers = []
        for i in range(3):
            t = time.monotonic()
            r = b.post("shoperti", {"id": f"evt_new_{i}", "topic": "brand/new", "data": {"id": "x"}},
                       timeout=15)
            answers.append((r.status_code, r.json()["error"], round(time.monotonic() - t, 3)))
        assert all(s == 503 and e == "kafka_unavailable" and sec < 1.0
                   for s, e, sec in answers), answers
    publish_text(capsys, "unknown-topic-policies", "=== unknown-topic-policies\n"
                 f"  catch-all topic: 200 to webhooks.piriod.other in {1000 * took_catch:.0f} ms\n"
                 f"  fail: {answers}")


def test_replay_of_unknown_topic_dead_letters_once_the_topic_exists(cluster, capsys):
    """webhook-bridge replay on real Kafka: dead letters of an event type
    with no topic (reason unknown_topic) stay failing while the topic is
    missing, go to it once an operator created it, with their ids, once."""
    heal(cluster)
    topic = "webhooks.piriod.late.kind"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    with harness.Bridge(cluster.bootstrap) as b:
        ids = []
        for i in range(20):
            r = b.post("piriod", {"event": "late.kind", "object_id": f"late_{i}"}, timeout=10)
            assert r.status_code == 200 and r.json()["intended_topic"] == topic, r.text
            ids.append(r.json()["id"])
    sel = ("--provider", "piriod", "--reason", "unknown_topic", "--since", since)
    missing = harness.replay(cluster.bootstrap, *sel, "--group", "replay-test")
    assert missing["selected"] == 20 and missing["still_failing_by_reason"] == {
        "unknown_topic": 20}, missing
    cluster.create_topics([topic])
    dry = harness.replay(cluster.bootstrap, *sel, "--dry-run")
    run = harness.replay(cluster.bootstrap, *sel)
    assert dry["would_pass"] == run["replayed"] == 20 and run["by_topic"] == {topic: 20}, run
    again = harness.replay(cluster.bootstrap, *sel)
    assert again["replayed"] == 0 and again["read"] == 0, again
    c = harness.consumer(cluster.bootstrap)
    try:
        from confluent_kafka import TopicPartition
        ends = harness.end_offsets(cluster.bootstrap, topic)
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        seen, deadline = [], time.time() + 30
        while len(seen) < sum(ends.values()) and time.time() < deadline:
            for m in c.consume(100, 0.5):
                if not m.error():
                    seen.append(json.loads(m.value()))
    finally:
        c.close()
    assert sorted(r["id"] for r in seen) == sorted(ids)
    assert all(r["type"] == "piriod.late.kind" and r["replayedfrom"].startswith(
        "webhooks.deadletter/") for r in seen)
    publish_text(capsys, "replay", "=== replay: 20 dead letters of a missing topic\n"
                 f"  topic missing: {missing['still_failing']} still failing (unknown_topic)\n"
                 f"  topic created: dry run would pass {dry['would_pass']}, replayed "
                 f"{run['replayed']}, a second run {again['replayed']}; "
                 f"{len(seen)} records in {topic}, each id once")


def test_spool_piriod_never_gets_a_failure_through_a_leader_kill_and_a_full_outage(
        cluster, capsys, tmp_path):
    """Issue 14's promise on real Kafka: Piriod (spool on) answered 200 through
    the busiest leader's SIGKILL and 20 s without any broker; afterwards
    every 200, spooled or not, is in Kafka."""
    heal(cluster)
    env = {"BRIDGE_SPOOL_DIR": str(tmp_path / "spool"), "BRIDGE_PROVIDER_PIRIOD_SPOOL": "on",
           **BRIDGE_ENV}
    with harness.Bridge(cluster.bootstrap, env=env) as b:
        b.wait_kafka_reachable(True, timeout=30)
        for _ in range(20):  # the producer's first record may be spooled: warm it
            r = b.post("piriod", {"event": "payment.created", "object_id": "warm"})
            if r.status_code == 200 and "offset" in r.json():
                break
        deadline = time.time() + 60
        while b.metrics().get("webhook_bridge_spool_records") != 0:
            assert time.time() < deadline, "the spool never emptied before the faults"
            time.sleep(0.5)
        node, _ = busiest_leader(cluster)
        load = faults.Load(b.port, b.admin_port).start()
        time.sleep(5)
        load.mark(f"SIGKILL node {node}")
        cluster.kill(node)
        time.sleep(10)
        cluster.start_node(node)
        cluster.wait_node_up(node)
        load.mark(f"node {node} back")
        time.sleep(5)
        whole_cluster_down(cluster, load, 20)
        time.sleep(10)
        res = load.stop(cluster.bootstrap, "spool: Piriod spooling, the busiest leader SIGKILLed "
                                            "10 s, then the cluster down 20 s")
        deadline = time.time() + 120
        while b.metrics().get("webhook_bridge_spool_records") != 0:
            assert time.time() < deadline, "the spool never emptied after the faults"
            time.sleep(0.5)
        m = b.metrics()
    found = res.spooled_found(cluster.bootstrap, faults.TOPICS)
    piriod = res.of("piriod")
    failures = [a for a in piriod if a.status != 200]
    publish(capsys, res, [f"Piriod: {len(piriod)} answers, {len(failures)} failures, "
                          f"{len(res.spooled)} answered 200 spooled, {found} of them found in "
                          f"Kafka by id; replayed {m['webhook_bridge_spool_replayed_total']:.0f}"])
    assert res.lost == 0 and res.wrong == 0 and not res.misplaced, res.table()
    assert not failures, [(a.status, a.error) for a in failures][:10]
    assert res.spooled, "nothing was spooled: the faults did not bite"
    assert found == len(res.spooled), f"{len(res.spooled) - found} spooled 200s not in Kafka"
