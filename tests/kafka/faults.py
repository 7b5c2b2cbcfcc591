"""faults.py - steady webhook load against a bridge on real Kafka, and what
the providers saw through a fault: every answer (provider, status, latency),
/readyz sampled four times a second, and every 200 receipt read back from
Kafka at its topic/partition/offset. The fault tests (test_faults.py) assert
on the counts; the table is for the reader (and tests/README.md, "The fault suite on real Kafka").

  Load(bridge_port, admin_port, senders=2)  two senders per provider, each one
      keep-alive connection sending one webhook after another
    .start(); .mark(label) -> t; .stop() -> Result
  Result.table() -> str; .lost, .longest_fail_run(provider), .first_200(parts, after)
"""
import http.client
import json
import random
import statistics
import threading
import time
import uuid

import harness

TOPICS = ["webhooks.piriod.payment.created", "webhooks.piriod.invoice.paid",
          "webhooks.shoperti.orders.created", "webhooks.shoperti.orders.paid",
          "webhooks.bonifiq.point.add", "webhooks.bonifiq.point.remove",
          "webhooks.deadletter"]
PROVIDERS = ("piriod", "shoperti", "bonifiq")


def body_of(provider, rng):
    """A webhook as the provider sends it (seeds/): keys spread over partitions."""
    n = rng.randrange(1_000_000)
    if provider == "piriod":
        return {"event": rng.choice(["payment.created", "invoice.paid"]), "object_id": f"pay_{n}"}
    if provider == "shoperti":
        return {"id": f"evt_{uuid.uuid4().hex}", "topic": rng.choice(["orders/created",
                                                                       "orders/paid"]),
                "created_at": "2024-03-01T13:16:11Z", "data": {"id": f"ord_{n}"}}
    return {"Uuid": str(uuid.uuid4()), "Timestamp": "2024-03-01T13:16:11", "Topic": 0,
            "TopicName": rng.choice(["Point_Add", "Point_Remove"]),
            "Payload": {"Customer": {"Id": n}}}


class Answer:
    __slots__ = ("provider", "t0", "t1", "status", "receipt", "error")

    def __init__(self, provider, t0, t1, status, receipt, error):
        self.provider, self.t0, self.t1 = provider, t0, t1
        self.status, self.receipt, self.error = status, receipt, error


class Load:
    def __init__(self, port, admin_port, senders=2, pause=0.005, timeout=40):
        self.port, self.admin_port = port, admin_port
        self.senders, self.pause, self.timeout = senders, pause, timeout
        self.answers, self.readyz, self.marks = [], [], []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def start(self):
        self.t_start = time.monotonic()
        for i, provider in enumerate(p for p in PROVIDERS for _ in range(self.senders)):
            t = threading.Thread(target=self._send, args=(provider, random.Random(i)), daemon=True)
            self._threads.append(t)
        self._threads.append(threading.Thread(target=self._sample_readyz, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def mark(self, label):
        t = time.monotonic()
        self.marks.append((label, t))
        return t

    def _send(self, provider, rng):
        conn = None
        while not self._stop.is_set():
            body = json.dumps(body_of(provider, rng)).encode()
            t0 = time.monotonic()
            status = receipt = error = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request("POST", f"/webhooks/{provider}", body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                text = r.read()
                status = r.status
                if status == 200:
                    receipt = json.loads(text)
                elif status in harness.FAILURE_STATUSES:
                    assert r.getheader("Retry-After"), "a failure answer without Retry-After"
                    error = json.loads(text)["error"]
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                error = repr(e)
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.answers.append(Answer(provider, t0, time.monotonic(), status, receipt, error))
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def _sample_readyz(self):
        conn = None
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2)
                conn.request("GET", "/readyz")
                r = conn.getresponse()
                doc = json.loads(r.read())
                self.readyz.append((t, r.status, doc.get("kafka")))
            except (OSError, http.client.HTTPException, ValueError):
                self.readyz.append((t, None, None))
                conn = None
            self._stop.wait(0.25)

    def stop(self, bootstrap, name):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return Result(name, self, bootstrap)


class Result:
    def __init__(self, name, load, bootstrap):
        self.name = name
        self.marks = load.marks
        self.t_start = load.t_start
        self.answers = sorted(load.answers, key=lambda a: a.t1)
        self.readyz = load.readyz
        # a spooled 200 has no offset yet: found by its id (spooled_found)
        self.spooled = [a.receipt for a in self.answers if a.status == 200 and
                        a.receipt.get("spooled")]
        receipts = [a.receipt for a in self.answers if a.status == 200 and
                    not a.receipt.get("spooled")]
        got = harness.read_receipts(bootstrap, receipts, timeout=120)
        self.receipts = len(receipts)
        self.read_back = 0
        self.wrong = 0
        for r in receipts:
            m = got.get((r["topic"], r["partition"], r["offset"]))
            if m is None:
                continue
            if json.loads(m.value())["id"] == r["id"]:
                self.read_back += 1
            else:
                self.wrong += 1
        # a receipt whose record is not at its offset: looked for by id in
        # its partition, so that a wrong offset in a receipt (the record in
        # Kafka elsewhere) is told apart from a record Kafka does not have
        missing = [r for r in receipts if (r["topic"], r["partition"], r["offset"]) not in got]
        self.misplaced = []  # (receipt, offset where the record is)
        absent = []
        if missing:
            where = harness.find_ids(bootstrap, missing)
            for r in missing:
                (self.misplaced.append((r, where[r["id"]])) if r["id"] in where
                 else absent.append(r))
        self.absent = absent
        self.lost = len(absent)

    def spooled_found(self, bootstrap, topics):
        """How many spooled 200s are in topics (by id, each record once)."""
        from confluent_kafka import TopicPartition
        want = {r["id"] for r in self.spooled}
        c = harness.consumer(bootstrap)
        found = set()
        try:
            parts = []
            for t in topics:
                parts += [TopicPartition(t, p, 0) for p in harness.end_offsets(bootstrap, t)]
            c.assign(parts)
            idle = time.time() + 10
            while time.time() < idle and len(found) < len(want):
                batch = c.consume(1000, 1.0)
                if batch:
                    idle = time.time() + 10
                for m in batch:
                    if not m.error():
                        rid = json.loads(m.value())["id"]
                        if rid in want:
                            found.add(rid)
        finally:
            c.close()
        return len(found)

    def of(self, provider):
        return [a for a in self.answers if a.provider == provider]

    def longest_fail_run(self, provider):
        """(length, status) of the longest run of one failing status, in the
        order the provider got its answers (all its senders together)."""
        best, run, prev = (0, None), 0, None
        for a in self.of(provider):
            if a.status is not None and a.status != 200 and a.status == prev:
                run += 1
            elif a.status is not None and a.status != 200:
                run = 1
            else:
                run = 0
            prev = a.status
            if run > best[0]:
                best = (run, a.status)
        return best

    def first_200(self, partitions, after):
        """Seconds from after to the first 200 written to one of partitions by
        a request sent after it (one sent before may have been written before)."""
        for a in self.answers:
            if a.status == 200 and a.t0 > after and \
                    (a.receipt["topic"], a.receipt["partition"]) in partitions:
                return a.t1 - after
        return None

    def oks_between(self, t_from, t_to):
        """200s of requests sent after t_from and answered before t_to."""
        return [a for a in self.answers if a.status == 200 and a.t0 > t_from and a.t1 < t_to]

    def readyz_counts(self, t_from=None, t_to=None):
        counts = {}
        for t, status, _ in self.readyz:
            if (t_from is None or t >= t_from) and (t_to is None or t <= t_to):
                counts[status] = counts.get(status, 0) + 1
        return counts

    def table(self, extra=()):
        t0 = self.t_start
        lines = [f"=== {self.name}",
                 "  marks: " + ", ".join(f"{label} at {t - t0:.1f} s" for label, t in self.marks)]
        statuses = sorted({a.status for a in self.answers}, key=lambda s: (s is None, s or 0))
        head = "  provider  answers " + "".join(f"{str(s if s else 'none'):>6}" for s in statuses)
        lines.append(head + "   longest failing run   p50 ms   max ms")
        for p in PROVIDERS:
            answers = self.of(p)
            if not answers:
                continue
            counts = "".join(f"{sum(1 for a in answers if a.status == s):>6}" for s in statuses)
            lat = [1000 * (a.t1 - a.t0) for a in answers]
            run, status = self.longest_fail_run(p)
            run_text = f"{run} x {status}" if run else "0"
            lines.append(f"  {p:<9} {len(answers):>7} {counts}   {run_text:<19} "
                         f"{statistics.median(lat):>8.1f} {max(lat):>8.1f}")
        rz = self.readyz_counts()
        lines.append(f"  /readyz: {len(self.readyz)} samples, " +
                     ", ".join(f"{k}: {v}" for k, v in sorted(rz.items(), key=lambda kv: str(kv[0]))) +
                     "; kafka unreachable in " +
                     str(sum(1 for _, _, k in self.readyz if k == "unreachable")))
        lines.extend(f"  {e}" for e in extra)
        lines.append(f"  records: {self.receipts} answered 200 with an offset, {self.read_back} "
                     f"read back at their offsets with the same id, {self.wrong} wrong, "
                     f"{self.lost} lost")
        for r, at in self.misplaced:
            lines.append(f"  RECEIPT OFFSET WRONG (the record is in Kafka elsewhere, asserted 0): id {r['id']} "
                         f"receipt {r['topic']}/{r['partition']}/{r['offset']}, found at {at}")
        for r in self.absent:
            lines.append(f"  LOST: id {r['id']} receipt {r['topic']}/{r['partition']}/{r['offset']}")
        return "\n".join(lines)
