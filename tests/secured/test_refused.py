"""The bridge refused by a secured real Kafka 4.1.1 node (secured.py), and
refused by its authorizer.

Authentication refused (wrong password, unknown user, PLAIN's wrong password,
a CA that did not sign the broker's certificate, an expired client
certificate, a broker whose certificate names another host): once the cluster
refused the bridge, /readyz's body says "kafka":"authentication_failed" (not
"unreachable"), webhook_bridge_kafka_authentication_failed is 1, a webhook is
answered a failure status with Retry-After and "kafka_authentication_failed"
within 1.5 s (not after its whole deadline: Piriod's is 5 s), and the log says
so at level error ("kafka authentication failed", the client, a detail) once
per client, never for every reconnect; `replay` and `deadletters` exit with an
error and the same line. No output holds the password.

Authorization: User:bridge may not write webhooks.shoperti.locked.* (Write
denied, Describe allowed) nor see webhooks.shoperti.hidden.* (all denied): a
webhook for either is a dead letter (reason topic_authorization_failed, the
intended topic in the headers), answered 200 as a dead letter, counted in
webhook_bridge_refused_total, every time, quickly: a refusal for good, never
the failure rotation."""
import json
import subprocess
import time

import pytest
import requests

import harness
import secured

PIRIOD = {"event": "payment.created", "object_id": "pay_refused"}
ANSWER_S = 1.5  # a refused cluster's answer, once it refused
REFUSED_WITHIN_S = 20  # from the bridge's start until /readyz says so


@pytest.fixture(scope="module")
def cluster():
    c = secured.start_cluster()
    yield c
    c.stop()


def cases(cluster):
    wrong = secured.PASSWORD[::-1]
    return {
        "wrong-password": dict(mechanism="SCRAM-SHA-512", password=wrong),
        "unknown-user": dict(mechanism="SCRAM-SHA-512", user="nobody"),
        "plain-wrong-password": dict(mechanism="PLAIN", password=wrong),
        "untrusted-ca": dict(mechanism="SCRAM-SHA-256", ca=cluster.other_ca.cert),
        "expired-client-certificate": dict(mechanism="MTLS",
                                           cert=cluster.client_cert("bridge", expired=True)),
        "wrong-host-name": dict(mechanism="WRONGHOST"),
    }


CASES = ["wrong-password", "unknown-user", "plain-wrong-password", "untrusted-ca",
         "expired-client-certificate", "wrong-host-name"]


def auth_lines(lines):
    return [l for l in lines if l.get("msg") == "kafka authentication failed"]


def wait_refused(b, timeout=REFUSED_WITHIN_S):
    """Seconds until /readyz's kafka is authentication_failed."""
    t = time.monotonic()
    seen = None
    while time.monotonic() - t < timeout:
        seen = requests.get(b.admin + "/readyz", timeout=2).json().get("kafka")
        if seen == "authentication_failed":
            return time.monotonic() - t
        time.sleep(0.1)
    raise AssertionError(f"/readyz kafka stayed {seen!r}, wanted authentication_failed\n"
                         + b.stderr()[-2000:] + open(b.stdout_path).read()[-3000:])


@pytest.mark.parametrize("case", CASES)
def test_refused_cluster_is_said_at_once(cluster, case, tmp_path, capsys):
    kw = cases(cluster)[case]
    brokers, ini, env = secured.bridge_settings(cluster, kw.pop("mechanism"), **kw)
    with harness.Bridge(brokers, env=env, config=ini) as b:
        refused_after = wait_refused(b)
        m = b.metrics()
        assert m["webhook_bridge_kafka_authentication_failed"] == 1, m
        assert m["webhook_bridge_kafka_reachable"] == 0
        answers = []
        for provider, body in (("piriod", PIRIOD), ("piriod", PIRIOD),
                               ("shoperti", {"id": "e1", "topic": "orders/created"})):
            t = time.monotonic()
            r = b.post(provider, body, timeout=30)
            took = time.monotonic() - t
            answers.append(f"{provider} {r.status_code} {r.headers.get('Retry-After')} "
                           f"{r.text} in {1000 * took:.0f} ms")
            assert r.status_code in harness.FAILURE_STATUSES, answers
            assert r.headers.get("Retry-After"), answers
            assert r.json()["error"] == "kafka_authentication_failed", answers
            assert took < ANSWER_S, answers
        time.sleep(2)  # librdkafka retries: still one line per client
        lines = b.stdout_lines()
        said = auth_lines(lines)
        assert said, "no 'kafka authentication failed' line:\n" + open(b.stdout_path).read()[-3000:]
        for l in said:
            assert l["level"] == "error" and l.get("detail"), l
            assert l.get("client") in ("producer", "topics"), l
        clients = [l["client"] for l in said]
        assert "producer" in clients, said
        assert all(clients.count(c) == 1 for c in set(clients)), said
        out = b.stderr() + open(b.stdout_path).read()
        secured.secret_free(out)
        # nothing else from librdkafka outside the JSON log
        assert "%3|" not in b.stderr(), b.stderr()[-2000:]

    ini_path = tmp_path / "bridge.ini"
    ini_path.write_text(ini)
    tools = []
    for command in ("deadletters", "replay"):
        full = harness.replay_env("unused", **env)
        del full["BRIDGE_KAFKA_BROKERS"]
        t = time.monotonic()
        p = subprocess.run([harness.BRIDGE, command, "--config", str(ini_path), "--json"],
                           env=full, capture_output=True, text=True, timeout=90)
        took = time.monotonic() - t
        tools.append(f"{command}: exit {p.returncode} in {took:.1f} s")
        secured.secret_free(p.stdout, p.stderr)
        assert p.returncode != 0, (command, p.stdout, p.stderr[-2000:])
        said = auth_lines(json.loads(l) for l in (p.stdout + p.stderr).splitlines()
                          if l.startswith("{"))
        assert said and said[0].get("client") == command, (command, p.stderr[-3000:])
        assert took < 30, tools
    with capsys.disabled():
        print(f"\n=== {case}: /readyz authentication_failed {refused_after:.1f} s after the "
              f"start\n  " + "\n  ".join(answers + tools) + "\n  log: " + json.dumps(said[0]),
              flush=True)


@pytest.mark.parametrize("topic,event", [(secured.LOCKED, "locked/created"),
                                         (secured.HIDDEN, "hidden/created")])
def test_topic_not_authorized_is_a_dead_letter(cluster, topic, event, capsys):
    brokers, ini, env = secured.bridge_settings(cluster, "SCRAM-SHA-512")
    lines = []
    with harness.Bridge(brokers, env=env, config=ini) as b:
        b.wait_kafka_reachable(True, timeout=30)
        ok = b.post("shoperti", {"id": "evt_ok", "topic": "orders/created"}, timeout=30)
        assert ok.status_code == 200 and not ok.json().get("deadletter"), ok.text
        for i in range(3):
            t = time.monotonic()
            r = b.post("shoperti", {"id": f"evt_acl_{i}", "topic": event,
                                    "data": {"id": f"o{i}"}}, timeout=30)
            took = time.monotonic() - t
            lines.append(f"{topic} #{i + 1}: {r.status_code} {r.text} in {1000 * took:.0f} ms")
            assert r.status_code == 200, lines
            receipt = r.json()
            assert receipt["deadletter"] is True and receipt["topic"] == "webhooks.deadletter", lines
            assert receipt["intended_topic"] == topic, lines
            assert took < ANSWER_S, lines
            m = harness.read_at(cluster.bootstrap, receipt["topic"], receipt["partition"],
                                receipt["offset"])
            h = harness.headers_of(m)
            assert h["deadletter-reason"] == "topic_authorization_failed", h
            assert h["intended-topic"] == topic, h
            assert json.loads(m.value())["id"] == receipt["id"]
        m = b.metrics()
        key = 'webhook_bridge_refused_total{provider="shoperti",reason="topic_authorization_failed"}'
        lines.append(f"{key} {m.get(key)}")
        assert m.get(key) == 3, lines
        assert m["webhook_bridge_kafka_authentication_failed"] == 0
        assert requests.get(b.admin + "/readyz", timeout=5).json()["kafka"] == "reachable"
        # the other topics are still written
        ok = b.post("shoperti", {"id": "evt_ok2", "topic": "orders/created"}, timeout=30)
        assert ok.status_code == 200 and not ok.json().get("deadletter"), ok.text
        secured.secret_free(b.stderr(), open(b.stdout_path).read())
    with capsys.disabled():
        print(f"\n=== not authorized: {topic}\n  " + "\n  ".join(lines), flush=True)
