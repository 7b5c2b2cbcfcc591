"""dockerload.py - the fault suite's steady load (tests/kafka/faults.py) sent
to the compose stack's bridge as the providers send it there: Piriod and
Shoperti on their secret path segment, BonifiQ with its header token, the
secrets read from docker-compose.yml. What each provider saw and the records
read back are faults.Result's (its table).

  StackLoad(port=8080, admin_port=9090, senders=1, pause=0.02, providers=...,
            keepalive=True, env=None)  env: the secrets (default compose's)
    .start(); .mark(label); .stop(bootstrap, name) -> faults.Result
      (admin_port None: no /readyz samples; an answer other than 200 without
      Retry-After has error "no Retry-After")
  secrets() -> {"PIRIOD_PATH_TOKEN": ..., ...} from docker-compose.yml
  paths_and_headers(secrets) -> {provider: (path, headers)}
"""
import http.client
import json
import pathlib
import random
import sys
import threading
import time

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "kafka"))
import faults  # noqa: E402
import harness  # noqa: E402
from dockerenv import LOCAL, SOURCE_DIR  # noqa: E402


def secrets():
    env = yaml.safe_load((SOURCE_DIR / "docker-compose.yml").read_text())["services"]["bridge"]["environment"]
    return {k: str(v) for k, v in env.items()}


def paths_and_headers(env):
    return {
        "piriod": (f"/webhooks/piriod/{env['PIRIOD_PATH_TOKEN']}", {}),
        "shoperti": (f"/webhooks/shoperti/{env['SHOPERTI_PATH_TOKEN']}", {}),
        "bonifiq": ("/webhooks/bonifiq", {"X-Bonifiq-Token": env["BONIFIQ_TOKEN"]}),
    }


class StackLoad(faults.Load):
    """faults.Load with the stack's paths and tokens, on 127.0.0.1."""

    def __init__(self, port=8080, admin_port=9090, senders=1, pause=0.02, timeout=40,
                 providers=faults.PROVIDERS, host=LOCAL, keepalive=True, env=None):
        super().__init__(port, admin_port, senders=senders, pause=pause, timeout=timeout)
        self.keepalive = keepalive
        self.routes = paths_and_headers(env or secrets())
        self.providers, self.host = providers, host

    def start(self):
        self.t_start = time.monotonic()
        for i, provider in enumerate(p for p in self.providers for _ in range(self.senders)):
            self._threads.append(threading.Thread(target=self._send, daemon=True,
                                                  args=(provider, random.Random(1000 + i))))
        self._threads.append(threading.Thread(target=self._sample_readyz, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _send(self, provider, rng):
        path, extra = self.routes[provider]
        headers = {"Content-Type": "application/json", **extra}
        if not self.keepalive:  # a connection per webhook, as most senders do
            headers["Connection"] = "close"
        conn = None
        while not self._stop.is_set():
            body = json.dumps(faults.body_of(provider, rng)).encode()
            t0 = time.monotonic()
            status = receipt = error = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("POST", path, body, headers)
                r = conn.getresponse()
                text = r.read()
                status = r.status
                if status == 200:
                    receipt = json.loads(text)
                elif not r.getheader("Retry-After"):
                    # not the bridge's failure answer (nginx's 502 for a
                    # bridge gone): counted, never fatal to the sender
                    error = "no Retry-After"
                elif status in harness.FAILURE_STATUSES:
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
                self.answers.append(faults.Answer(provider, t0, time.monotonic(), status,
                                                  receipt, error))
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def _sample_readyz(self):
        if self.admin_port is None:  # behind a load balancer: no one /readyz
            return
        conn = None
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.admin_port, timeout=2)
                conn.request("GET", "/readyz")
                r = conn.getresponse()
                doc = json.loads(r.read())
                self.readyz.append((t, r.status, doc.get("kafka")))
            except (OSError, http.client.HTTPException, ValueError):
                self.readyz.append((t, None, None))
                conn = None
            self._stop.wait(0.25)


def between(result, t_from, t_to, provider=None):
    """Answers to requests sent after t_from and before t_to."""
    return [a for a in result.answers if t_from < a.t0 < t_to and
            (provider is None or a.provider == provider)]


def ids_in(bootstrap, topics, ids, idle_s=10):
    """Which of ids are the id of a record in topics (read from the start)."""
    from confluent_kafka import TopicPartition
    want, found = set(ids), set()
    c = harness.consumer(bootstrap)
    try:
        parts = [TopicPartition(t, p, 0) for t in topics for p in harness.end_offsets(bootstrap, t)]
        c.assign(parts)
        idle = time.time() + idle_s
        while time.time() < idle and len(found) < len(want):
            batch = c.consume(1000, 1.0)
            if batch:
                idle = time.time() + idle_s
            for m in batch:
                if not m.error():
                    rid = json.loads(m.value()).get("id")
                    if rid in want:
                        found.add(rid)
    finally:
        c.close()
    return found
