"""Tests on the Release binary (no sanitizers, which change memory use and
cannot run under valgrind): valgrind finds no error and no leak across
the failure paths (api-lookup's too: confirmed, refused, and a look-up
still waiting for the provider's API when the drain bound cuts it), and the resident memory stays bounded when load keeps
coming over the in-flight bound."""
import json
import os
import re
import subprocess
import time

import pytest

import harness
import loadgen

pytestmark = pytest.mark.skipif(not harness.RELEASE_BRIDGE or
                                not os.path.exists(harness.RELEASE_BRIDGE),
                                reason="WB_RELEASE_DIR not set (tests/run sets it)")

PIRIOD = {"event": "payment.created", "object_id": "pay_vg"}


class SlowApi:
    """The provider's API for Shoperti's look-ups: evt_ok is an orders/created
    event, evt_slow answers after 5 s, anything else is 404."""

    def __init__(self):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if "evt_slow" in self.path:
                    time.sleep(5)
                ok = self.path.endswith("/evt_ok")
                body = json.dumps({"id": "evt_ok", "topic": "orders/created"} if ok
                                  else {"error": "not found"}).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.env = {"BRIDGE_PROVIDER_SHOPERTI_AUTH": "api-lookup",
                    "BRIDGE_PROVIDER_SHOPERTI_AUTH_URL":
                        f"http://127.0.0.1:{self.server.server_address[1]}/v1/events/{{id}}",
                    "BRIDGE_PROVIDER_SHOPERTI_AUTH_MATCH": "/topic",
                    "BRIDGE_PROVIDER_SHOPERTI_AUTH_TIMEOUT_MS": "3000",
                    "BRIDGE_DRAIN_TIMEOUT_MS": "500"}

    def close(self):
        self.server.shutdown()


def shoperti(event_id):
    return {"topic": "orders/created", "id": event_id, "created_at": "2026-12-02T10:00:00Z",
            "data": {"id": "ord_vg"}}


def bodies(n):
    return [("/webhooks/piriod", json.dumps({"event": "payment.created",
                                             "object_id": f"p{i}", "pad": "x" * 900}).encode())
            for i in range(n)]


def test_valgrind_clean_across_success_errors_and_clients_gone(tmp_path):
    log = tmp_path / "vg.log"
    wrapper = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
               "--suppressions=" + os.path.join(harness.SOURCE_DIR, "tests", "valgrind.supp"),
               f"--log-file={log}"]
    api = SlowApi()
    with harness.Standin() as kafka:
        bridge = harness.Bridge(kafka.bootstrap, binary=harness.RELEASE_BRIDGE, wrapper=wrapper,
                                start_timeout=120, threads=2, env=api.env)
        try:
            bridge.wait_ready(timeout=60)
            # the first record waits for the producer id and its topic, 30x
            # slower under valgrind: on a busy machine past Piriod's 5 s
            # deadline (a failure answer, retried as Piriod would)
            statuses = [bridge.post("piriod", PIRIOD).status_code for _ in range(1)]
            while statuses[-1] != 200 and len(statuses) < 5:
                assert statuses[-1] in harness.FAILURE_STATUSES, statuses
                statuses.append(bridge.post("piriod", PIRIOD).status_code)
            assert statuses[-1] == 200, statuses
            assert bridge.post("piriod", "{nope").status_code == 400
            assert bridge.post("bonifiq", [1, 2]).json()["deadletter"] is True
            kafka.cmd("rtt all 1500")
            socks = [harness_socket(bridge.port) for _ in range(5)]  # gone before the ack
            time.sleep(0.5)
            for s in socks:
                s.close()
            kafka.cmd("rtt all 0")
            time.sleep(2)
            kafka.cmd("down all")
            r = bridge.post("piriod", PIRIOD, headers={}, timeout=30)
            assert r.status_code in harness.FAILURE_STATUSES
            kafka.cmd("up all")
            assert bridge.post("shoperti", shoperti("evt_ok"), timeout=30).status_code == 200
            assert bridge.post("shoperti", shoperti("evt_ok"), timeout=30).status_code == 200
            assert bridge.post("shoperti", shoperti("evt_nope"), timeout=30).status_code == 401
            # a look-up still waiting when the drain bound (500 ms) is reached
            import threading
            waiting = []
            t = threading.Thread(target=lambda: waiting.append(
                bridge.post("shoperti", shoperti("evt_slow"), timeout=30).status_code))
            t.start()
            time.sleep(1.0)
            rc = bridge.stop(timeout=120)
            t.join(30)
            assert waiting and waiting[0] in harness.FAILURE_STATUSES, waiting
        finally:
            api.close()
            bridge.session.close()
            if bridge.proc.poll() is None:
                bridge.proc.kill()
            bridge.tmp.cleanup()
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert "ERROR SUMMARY: 0 errors" in text, text[-4000:]
    m = re.search(r"definitely lost: ([\d,]+) bytes", text)
    assert m is None or m.group(1) == "0", text[-4000:]


def harness_socket(port):
    import socket
    body = json.dumps(PIRIOD).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /webhooks/piriod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return s


def test_rss_stays_bounded_over_the_inflight_bound():
    with harness.Standin() as kafka, harness.Bridge(
            kafka.bootstrap, binary=harness.RELEASE_BRIDGE,
            env={"BRIDGE_MAX_INFLIGHT": "500", "BRIDGE_LOG_LEVEL": "warn",
                 "BRIDGE_PROVIDER_PIRIOD_DEADLINE_MS": "25000",
                 # 3 s answers are slow, not dead, in this test (a connection set
                 # up under them takes longer than the 3 s default)
                 "BRIDGE_RDKAFKA_REQUEST_TIMEOUT_MS": "30000",
                 "BRIDGE_RDKAFKA_SOCKET_CONNECTION_SETUP_TIMEOUT_MS": "30000"}) as bridge:
        bridge.wait_ready()
        assert bridge.post("piriod", PIRIOD).status_code == 200
        # acks take longer than a burst takes to send, even on a busy machine,
        # so that no slot frees up during a burst
        kafka.cmd("rtt all 3000")
        samples = []
        for round_ in range(3):
            results = loadgen.burst(bridge.port, bodies(1500), timeout=30)
            statuses = [s for s, _ in results]
            assert set(statuses) <= {200} | harness.FAILURE_STATUSES, set(statuses)
            failures = sum(1 for s in statuses if s in harness.FAILURE_STATUSES)
            assert failures >= 1000  # over the bound: refused at once
            samples.append(bridge.rss_kib())
        kafka.cmd("rtt all 0")
        print("RSS KiB after each round:", samples)
        # bounded: the later rounds do not keep growing (allow allocator noise)
        assert samples[-1] <= samples[0] + 8 * 1024, samples


def test_two_threads_under_keep_alive_load_survive_and_exit_0(tmp_path):
    """Regression: each worker's h2o objects must be created and destroyed on
    its own thread (libh2o's socket buffer allocator is thread-local). With
    the wake-up socket made on the main thread, two threads under wrk crashed
    within seconds (h2o_buffer_consume assertion, or SIGSEGV)."""
    script = tmp_path / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      'wrk.body = \'{"event":"payment.created","object_id":"p1","pad":"'
                      + "x" * 900 + '"}\'\n')
    with harness.Standin() as kafka, harness.Bridge(
            kafka.bootstrap, binary=harness.RELEASE_BRIDGE, threads=2,
            env={"BRIDGE_LOG_LEVEL": "warn"}) as bridge:
        bridge.wait_ready()
        before = produced_total(kafka)
        for _ in range(3):
            out = subprocess.run(["wrk", "-t1", "-c256", "-d4s", "-s", str(script),
                                  f"{bridge.base}/webhooks/piriod"], capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert bridge.proc.poll() is None, bridge.stderr()[-2000:]
            assert "Non-2xx" not in out.stdout, out.stdout
        m = re.search(r"(\d+) requests in", out.stdout)
        assert m and int(m.group(1)) > 0
        assert produced_total(kafka) > before
    # the context manager asserts exit status 0 after SIGTERM


def produced_total(kafka):
    return harness.total_records(kafka.bootstrap, harness.all_topics(kafka.bootstrap))
