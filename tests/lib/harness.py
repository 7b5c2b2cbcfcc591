"""harness.py - start the Kafka stand-in and the real webhook-bridge binary,
send real HTTP requests, and read Kafka back with a real consumer.

Used by every integration test (tests/*/test_*.py). Environment, set by ctest:
  WB_BRIDGE   path of the webhook-bridge binary
  WB_STANDIN  path of the kafka-standin binary (librdkafka's mock cluster)
  WB_SOURCE_DIR  repository root
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import requests
from confluent_kafka import Consumer, TopicPartition

BRIDGE = os.environ.get("WB_BRIDGE", "")
STANDIN = os.environ.get("WB_STANDIN", "")
SOURCE_DIR = os.environ.get(
    "WB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# Sanitizer reports end a test: a bridge that touched freed memory fails it
# even if every answer looked right.
RELEASE_DIR = os.environ.get("WB_RELEASE_DIR", "")
# The Release binary (no sanitizers), for valgrind and memory figures.
RELEASE_BRIDGE = os.path.join(RELEASE_DIR, "webhook-bridge") if RELEASE_DIR else ""

# The failure answers: a provider's failure_statuses rotate through these
# (Piriod's default through all four; the others answer 503).
FAILURE_STATUSES = {500, 502, 503, 504}

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Standin:
    """The Kafka stand-in process: a mock cluster speaking the real protocol."""

    def __init__(self, brokers=3):
        self.proc = subprocess.Popen([STANDIN, str(brokers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("BOOTSTRAP "), f"stand-in said {line!r}"
        self.bootstrap = line.split(" ", 1)[1]
        self.brokers = brokers

    def cmd(self, command):
        """Sends one command (down/up/rtt/err/topic) and waits for its OK."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "OK", f"stand-in refused {command!r}: {answer!r}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Bridge:
    """The real binary on free ports, with the given environment and config."""

    def __init__(self, bootstrap=None, env=None, config=None, threads=1, wait_ready=True,
                 extra_args=(), binary=None, wrapper=(), start_timeout=20):
        self.port = free_port()
        self.admin_port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="wb-test-")
        e = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        e.update({
            "BRIDGE_LISTEN": f"127.0.0.1:{self.port}",
            "BRIDGE_ADMIN_LISTEN": f"127.0.0.1:{self.admin_port}",
            "BRIDGE_THREADS": str(threads),
            "BRIDGE_LOG_LEVEL": "info",
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
            "LSAN_OPTIONS": "suppressions=" + os.path.join(SOURCE_DIR, "tests", "lsan.supp"),
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        })
        if bootstrap is not None:
            e["BRIDGE_KAFKA_BROKERS"] = bootstrap
            # real brokers make authentication mandatory; tests that are not
            # about authentication say "none" explicitly
            for p in ("PIRIOD", "SHOPERTI", "BONIFIQ"):
                e.setdefault(f"BRIDGE_PROVIDER_{p}_AUTH", "none")
        if env:
            e.update(env)
        e = {k: v for k, v in e.items() if v is not None}
        args = [*wrapper, binary or BRIDGE]
        if config is not None:
            path = os.path.join(self.tmp.name, "bridge.ini")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        args += list(extra_args)
        self.stdout_path = os.path.join(self.tmp.name, "stdout")
        self.stderr_path = os.path.join(self.tmp.name, "stderr")
        self._out = open(self.stdout_path, "w")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, env=e, stdout=self._out, stderr=self._err)
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.session = requests.Session()
        if wait_ready:
            self.wait_healthy(start_timeout)

    def wait_healthy(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"bridge exited {self.proc.returncode}: {self.stderr()}")
            try:
                if requests.get(self.admin + "/healthz", timeout=1).status_code == 200:
                    # and the webhook port accepts
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
            except (requests.ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError("bridge did not become healthy: " + self.stderr())

    def wait_ready(self, want=200, timeout=20):
        deadline = time.time() + timeout
        status = None
        while time.time() < deadline:
            status = requests.get(self.admin + "/readyz", timeout=2).status_code
            if status == want:
                return
            time.sleep(0.1)
        raise AssertionError(f"/readyz stayed {status}, wanted {want}")

    def wait_kafka_reachable(self, want=True, timeout=20):
        """Waits for /readyz's "kafka" (the producer's broker connections)."""
        deadline = time.time() + timeout
        seen = None
        while time.time() < deadline:
            seen = requests.get(self.admin + "/readyz", timeout=2).json().get("kafka")
            if seen == ("reachable" if want else "unreachable"):
                return
            time.sleep(0.1)
        raise AssertionError(f"/readyz kafka stayed {seen}, wanted reachable={want}")

    def post(self, provider, body, headers=None, path=None, timeout=40, **kw):
        """POSTs body (dict/list -> JSON, str/bytes as is) to /webhooks/<provider>."""
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        url = self.base + (path if path is not None else f"/webhooks/{provider}")
        return self.session.post(url, data=body, headers=h, timeout=timeout, **kw)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def metrics(self):
        """Parses /metrics into {'name{labels}': value}."""
        text = requests.get(self.admin + "/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stdout_lines(self):
        if not self._out.closed:
            self._out.flush()
        with open(self.stdout_path) as f:
            return [json.loads(l) for l in f if l.startswith("{")]

    def stderr(self):
        if not self._err.closed:
            self._err.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the bridge and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("bridge did not stop in time")
        return self.proc.returncode

    def kill(self):
        """SIGKILLs the bridge (a crash: no drain, nothing flushed) and
        releases what this object holds, keeping nothing of the process."""
        self.session.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._out.close()
        self._err.close()
        self.tmp.cleanup()

    def check_sanitizers(self):
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            assert m not in err, "sanitizer report:\n" + err[-6000:]

    def close(self):
        self.session.close()
        rc = self.stop()
        self._out.close()
        self._err.close()
        self.check_sanitizers()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            rc = self.close()
            if exc_type is None:
                assert rc == 0, f"bridge exited {rc}: {self.stderr()[-3000:]}"
        finally:
            self.tmp.cleanup()


def consumer(bootstrap):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "wb-tests",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": False})


def read_at(bootstrap, topic, partition, offset, timeout=15):
    """The record at topic/partition/offset, as the Message."""
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            assert m.offset() == offset, (m.offset(), offset)
            return m
        raise AssertionError(f"no record at {topic}/{partition}@{offset}")
    finally:
        c.close()


def read_receipts(bootstrap, receipts, timeout=60):
    """Reads the record of every receipt; returns {(topic, partition, offset): Message}."""
    want = {(r["topic"], r["partition"], r["offset"]) for r in receipts}
    ranges = {}
    for t, p, o in want:
        lo, hi = ranges.get((t, p), (o, o))
        ranges[(t, p)] = (min(lo, o), max(hi, o))
    c = consumer(bootstrap)
    got = {}
    try:
        c.assign([TopicPartition(t, p, lo) for (t, p), (lo, hi) in ranges.items()])
        deadline = time.time() + timeout
        while time.time() < deadline and len(got) < len(want):
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                k = (m.topic(), m.partition(), m.offset())
                if k in want:
                    got[k] = m
    finally:
        c.close()
    return got


def find_ids(bootstrap, receipts, timeout=60):
    """{id: offset} of the receipts' records found anywhere in their partitions."""
    want = {r["id"] for r in receipts}
    parts = {(r["topic"], r["partition"]) for r in receipts}
    found = {}
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(t, p, 0) for t, p in parts])
        idle = time.time() + 10
        deadline = time.time() + timeout
        while time.time() < min(idle, deadline) and len(found) < len(want):
            batch = c.consume(1000, 1.0)
            if batch:
                idle = time.time() + 10
            for m in batch:
                if not m.error():
                    rid = json.loads(m.value()).get("id")
                    if rid in want:
                        found.setdefault(rid, m.offset())
    finally:
        c.close()
    return found


def end_offsets(bootstrap, topic):
    """{partition: high watermark} of topic; {} if the topic does not exist."""
    c = consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return {}
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in t.partitions}
    finally:
        c.close()


def total_records(bootstrap, topics):
    return sum(sum(end_offsets(bootstrap, t).values()) for t in topics)


def all_topics(bootstrap):
    c = consumer(bootstrap)
    try:
        return sorted(t for t in c.list_topics(timeout=10).topics if not t.startswith("__"))
    finally:
        c.close()


def headers_of(msg):
    return {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}


class Parallel:
    """Runs fn over items on n threads; collects results in order."""

    def __init__(self, fn, items, n=32):
        self.results = [None] * len(items)
        it = iter(enumerate(items))
        lock = threading.Lock()

        def run():
            while True:
                with lock:
                    try:
                        i, x = next(it)
                    except StopIteration:
                        return
                try:
                    self.results[i] = fn(x)
                except Exception as e:  # reported by the caller
                    self.results[i] = e

        ts = [threading.Thread(target=run) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def replay_env(bootstrap, **extra):
    """The environment of `webhook-bridge replay`/`deadletters` in the tests:
    the bridge's configuration (authentication none) on bootstrap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update({"BRIDGE_KAFKA_BROKERS": bootstrap, "BRIDGE_PROVIDER_PIRIOD_AUTH": "none",
                "BRIDGE_PROVIDER_SHOPERTI_AUTH": "none", "BRIDGE_PROVIDER_BONIFIQ_AUTH": "none",
                "ASAN_OPTIONS": "detect_leaks=1:exitcode=86",
                "LSAN_OPTIONS": "suppressions=" + os.path.join(SOURCE_DIR, "tests", "lsan.supp")})
    env.update(extra)
    return env


def replay(bootstrap, *args, env=None, command="replay", timeout=120):
    """Runs `webhook-bridge <command> ... --json`; its summary, once it
    exited 0 without a sanitizer report."""
    p = subprocess.run([BRIDGE, command, *args, "--json"], env=env or replay_env(bootstrap),
                       capture_output=True, text=True, timeout=timeout)
    for m in SANITIZER_MARKERS:
        assert m not in p.stderr, p.stderr
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)
