"""The spool under crashes: a steady Piriod load (spool on) while the bridge
is SIGKILLed 50 times at random points (during start-up and its replay of
the spool, during load, with Kafka fast, slow past spool_after_ms, or down)
and restarted on the same spool directory. Then, with Kafka up, every record
that was answered 200 (with an offset or spooled) must be in its topic, and
the records of each key must first appear in the order they were answered.
Prints the counts. WB_SPOOL_KILLS and WB_SPOOL_KILLS_SEED change the loop.
The stand-in keeps about 5 MB a partition and drops the oldest beyond: the
senders pace themselves (a steady load, not a flood) over 16 partitions."""
import os
import random
import threading
import time

import requests

import harness
from test_spool import records_of, wait_metric

TOPIC = "webhooks.piriod.payment.created"
KILLS = int(os.environ.get("WB_SPOOL_KILLS", "50"))
SEED = int(os.environ.get("WB_SPOOL_KILLS_SEED", str(int(time.time()))))
SENDERS = 8  # one key each, sending one webhook at a time like a provider
PACE = 0.02  # seconds between a sender's answer and its next webhook


class Load:
    """SENDERS threads posting Piriod webhooks to whichever bridge is up."""

    def __init__(self):
        self.base = None  # set while a bridge runs
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = {}  # id -> (key, n, spooled)
        self.order = {}  # key -> [id, ...] in the order answered
        self.counts = {"200 offset": 0, "200 spooled": 0, "failure": 0, "no answer": 0}
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(SENDERS)]

    def run(self, k):
        key = f"kill_{k}"
        s = requests.Session()
        n = 0
        while not self.stop.is_set():
            base = self.base
            if base is None:
                time.sleep(0.01)
                continue
            n += 1
            body = {"event": "payment.created", "object_id": key, "n": n}
            try:
                r = s.post(base + "/webhooks/piriod", json=body, timeout=10)
            except requests.RequestException:
                with self.lock:
                    self.counts["no answer"] += 1
                s.close()
                s = requests.Session()
                time.sleep(0.02)
                continue
            with self.lock:
                if r.status_code == 200:
                    a = r.json()
                    spooled = a.get("spooled") is True
                    assert spooled or "offset" in a, a  # no 200 without one of the two
                    self.counts["200 spooled" if spooled else "200 offset"] += 1
                    self.answered[a["id"]] = (key, n, spooled)
                    self.order.setdefault(key, []).append(a["id"])
                else:
                    assert r.status_code in harness.FAILURE_STATUSES, r.text
                    self.counts["failure"] += 1
            time.sleep(PACE)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_fifty_sigkills_under_load_lose_no_answered_record(tmp_path):
    rnd = random.Random(SEED)
    env = {"BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
           "BRIDGE_PROVIDER_PIRIOD_SPOOL": "on",
           "BRIDGE_PROVIDER_PIRIOD_SPOOL_AFTER_MS": "400"}
    modes = {"fast": "rtt all 0", "slow": "rtt all 700", "down": "down all"}
    seen_modes = {m: 0 for m in modes}
    kill_points = {"start-up": 0, "under load": 0}
    with harness.Standin() as kafka, Load() as load:
        kafka.cmd(f"topic {TOPIC} 16")
        for i in range(KILLS):
            mode = rnd.choice(list(modes))
            seen_modes[mode] += 1
            kafka.cmd("up all")
            kafka.cmd(modes[mode])
            early = rnd.random() < 0.2
            b = harness.Bridge(kafka.bootstrap, env=env, wait_ready=not early)
            if early:  # start-up, the spool's scan and the first replays
                kill_points["start-up"] += 1
                load.base = b.base
                time.sleep(rnd.uniform(0.0, 0.5))
            else:
                kill_points["under load"] += 1
                load.base = b.base
                time.sleep(rnd.uniform(0.4, 1.6))
            b.kill()
            load.base = None
        kafka.cmd("up all")
        kafka.cmd("rtt all 0")
        with harness.Bridge(kafka.bootstrap, env=env) as b:
            wait_metric(b, "webhook_bridge_spool_records", 0, timeout=60)
            corrupt = b.metrics()["webhook_bridge_spool_corrupt_total"]
        parts = records_of(kafka.bootstrap, TOPIC)
    in_kafka = {}  # id -> occurrences; key -> ids in offset order
    by_key = {}
    for recs in parts.values():
        for rec in recs:
            in_kafka[rec["id"]] = in_kafka.get(rec["id"], 0) + 1
            by_key.setdefault(rec["data"]["object_id"], []).append(rec["id"])
    lost = [i for i in load.answered if i not in in_kafka]
    lost_spooled = [i for i in lost if load.answered[i][2]]
    twice = sum(1 for i in load.answered if in_kafka.get(i, 0) > 1)
    out_of_order = 0
    for key, ids in load.order.items():
        first = {}
        for pos, i in enumerate(by_key.get(key, [])):
            first.setdefault(i, pos)
        positions = [first[i] for i in ids if i in first]
        out_of_order += sum(1 for a, b in zip(positions, positions[1:]) if b < a)
    print(f"\nspool kill loop (seed {SEED}): {KILLS} SIGKILLs "
          f"({kill_points['start-up']} during start-up, {kill_points['under load']} under load; "
          f"Kafka {seen_modes})")
    print(f"  answers: {load.counts}")
    print(f"  answered 200: {len(load.answered)}; in Kafka: {len(load.answered) - len(lost)}; "
          f"lost: {len(lost)} ({len(lost_spooled)} of them spooled); in Kafka twice: {twice}; "
          f"out of order per key: {out_of_order}; corrupt records moved aside: {corrupt:.0f}")
    assert load.counts["200 spooled"] > 0 and load.counts["200 offset"] > 0, load.counts
    assert not lost, lost[:10]
    assert out_of_order == 0
