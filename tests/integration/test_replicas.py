"""Piriod's view of failure codes behind a load balancer: three bridges
behind nginx, Kafka down, six Piriod senders, hundreds of failure answers in
a row. Piriod disables a webhook when its last 3 calls got the same failing
status. One bridge never repeats a code; round-robin interleaves replicas
that each rotate from a random place (the runs of 3 are counted and printed,
not asserted: deploy/README.md, "Several replicas"); provider affinity (nginx `hash $uri
consistent`) sends Piriod to one replica, whose rotation then holds."""
import http.client
import json
import threading
import time

import harness
import nginx

PIRIOD = json.dumps({"event": "payment.created", "object_id": "pay_1"}).encode()


def failures_through(port, seconds=8, senders=6):
    answers, lock, stop = [], threading.Lock(), threading.Event()

    def send():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            conn.request("POST", "/webhooks/piriod", PIRIOD, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            with lock:
                answers.append(r.status)
        conn.close()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return answers


def runs(statuses):
    """(longest run of one failing status, how many answers ended a run of 3+)."""
    longest, run, prev, threes = 0, 0, None, 0
    for s in statuses:
        run = run + 1 if s == prev and s != 200 else (1 if s != 200 else 0)
        prev = s
        longest = max(longest, run)
        threes += run >= 3
    return longest, threes


def given(bridge):
    """Piriod's statuses in the order this bridge gave them (its access log)."""
    return [l["status"] for l in bridge.stdout_lines()
            if l["msg"] == "webhook" and l["provider"] == "piriod"]


def report(capsys, what, statuses):
    longest, threes = runs(statuses)
    with capsys.disabled():
        print(f"\n  {what}: {len(statuses)} Piriod failure answers, longest run of one code "
              f"{longest}, answers that made a run of 3+: {threes} "
              f"({100 * threes / len(statuses):.1f} %)", flush=True)
    return longest


def measure(kafka, balance, capsys):
    """Statuses as the senders saw them, and as each replica gave them."""
    env = {"BRIDGE_PROVIDER_PIRIOD_DEADLINE_MS": "100"}
    bridges = [harness.Bridge(kafka.bootstrap, env=env) for _ in range(3)]
    try:
        with nginx.Nginx([b.port for b in bridges], balance) as lb:
            statuses = failures_through(lb.port)
        per_replica = [given(b) for b in bridges]
    finally:
        for b in bridges:
            b.close()
            b.tmp.cleanup()
    assert set(statuses) <= harness.FAILURE_STATUSES, set(statuses)
    assert len(statuses) > 100
    report(capsys, f"3 replicas, nginx {balance}, as six senders saw them", statuses)
    return statuses, per_replica


def test_one_bridge_never_repeats_a_failure_code(capsys):
    with harness.Standin() as kafka, harness.Bridge(
            kafka.bootstrap, env={"BRIDGE_PROVIDER_PIRIOD_DEADLINE_MS": "100"}) as bridge:
        kafka.cmd("down all")
        statuses = failures_through(bridge.port, seconds=4)
        assert len(statuses) > 50 and set(statuses) <= harness.FAILURE_STATUSES
        # in the order the bridge gave them (its access log): never the same twice
        order = given(bridge)
        assert len(order) == len(statuses)
        assert runs(order)[0] == 1, order
        # six concurrent senders may see two answers cross on the way
        report(capsys, "1 bridge, as six senders saw them", statuses)


def test_three_replicas_round_robin_and_by_provider(capsys):
    with harness.Standin() as kafka:
        kafka.cmd("down all")
        measure(kafka, "round-robin", capsys)
        statuses, per_replica = measure(kafka, "provider", capsys)
        # affinity: one replica took every Piriod webhook, and its rotation holds
        busy = [r for r in per_replica if r]
        assert len(busy) == 1 and len(busy[0]) == len(statuses), [len(r) for r in per_replica]
        assert runs(busy[0])[0] == 1, busy[0]
