"""auth = api-lookup end to end: the real webhook-bridge binary, the Kafka
stand-in, and a stand-in of the provider's event API (tests/lib/apistandin.py,
a threaded HTTP/1.1 server on loopback, plain or TLS with a CA made here by
the openssl command).

Checks that a webhook is produced (200, the record in Kafka) only when the
API, asked for the event by its percent-encoded id with the configured
credential, answers 2xx JSON whose matched fields equal the webhook's; that
an API that does not know the event (404, 410, 401, 403, another topic), or
a webhook without its id or matched field, gets 401 auth_invalid with
nothing produced; that every other outcome (connection refused, a timeout,
5xx/429, an answer that is not HTTP or not JSON, over 64 KiB, TLS that does
not verify) is a failure answer with Retry-After, never a 200; that
confirmations are cached and refusals are not; that the look-ups are
bounded (max_concurrent, FIFO) while the worker keeps serving others; that
a spooling provider looks up first and spools only what the API confirmed; that
a fourth provider gets the method from configuration alone; that bad
settings stop start-up naming the key; and that the credential is never in
a log line or an answer.
"""
import contextlib
import json
import os
import secrets
import subprocess
import threading
import time

import pytest
import requests

from apistandin import ApiStandin
from harness import (BRIDGE, FAILURE_STATUSES, SANITIZER_MARKERS, Bridge, Standin,
                     all_topics, end_offsets, free_port, read_at, total_records)

TOKEN = "shp_" + secrets.token_urlsafe(24)  # the API credential of this run
ACME_KEY = "acme_" + secrets.token_hex(16)
SECRETS = (TOKEN, ACME_KEY)
TOPIC = "webhooks.shoperti.orders.created"
LOGS = []  # the logs of every bridge this file started and stopped


def hook(ident, topic="orders/created", **extra):
    body = {"topic": topic, "id": ident, "created_at": "2026-11-23T12:00:00Z",
            "data": {"id": "ord_42"}}
    body.update(extra)
    return body


def lookup_env(url, **keys):
    """Shoperti with auth = api-lookup on url; keys are further AUTH_* keys
    (timeout_ms=300 -> BRIDGE_PROVIDER_SHOPERTI_AUTH_TIMEOUT_MS=300; None unsets)."""
    env = {"BRIDGE_PROVIDER_SHOPERTI_AUTH": "api-lookup",
           "BRIDGE_PROVIDER_SHOPERTI_AUTH_URL": url,
           "BRIDGE_PROVIDER_SHOPERTI_AUTH_MATCH": "/topic",
           "BRIDGE_PROVIDER_SHOPERTI_AUTH_SCHEME": "Bearer",
           "BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV": "SHOPERTI_TOKEN",
           "SHOPERTI_TOKEN": TOKEN}
    for k, v in keys.items():
        env[k if k.startswith("BRIDGE_") else "BRIDGE_PROVIDER_SHOPERTI_AUTH_" + k.upper()] = v
    return env


def logs_of(b):
    text = b.stderr()
    with open(b.stdout_path) as f:
        text += f.read()
    return text


@contextlib.contextmanager
def bridge(standin, url, config=None, env=None, threads=1, **keys):
    """A bridge with the look-up on url; its logs are kept (LOGS) and checked
    for the credential once it stopped; the harness checks the sanitizers."""
    e = lookup_env(url, **keys)
    e.update(env or {})
    with Bridge(standin.bootstrap, env=e, config=config, threads=threads) as b:
        try:
            yield b
        finally:
            b.stop()
            text = logs_of(b)
            LOGS.append(text)
            for s in SECRETS:
                assert s not in text, "the API credential is in the bridge's logs"


def api_url(api, host="127.0.0.1", scheme="http"):
    return f"{scheme}://{host}:{api.port}/v1/events/{{id}}"


def post(b, body, provider="shoperti"):
    t = time.monotonic()
    r = b.post(provider, body)
    r.elapsed_s = time.monotonic() - t
    for s in SECRETS:
        assert s not in r.text
    return r


def snapshot(standin):
    bs = standin.bootstrap
    return end_offsets(bs, TOPIC), total_records(bs, all_topics(bs))


def counters(b):
    m = b.metrics()
    out = {r: m.get(f'webhook_bridge_auth_lookups_total{{provider="shoperti",result="{r}"}}')
           for r in ("confirmed", "refused", "failed", "cached")}
    out["auth_failures"] = m.get('webhook_bridge_auth_failures_total{provider="shoperti"}')
    return out


def delta(before, after):
    return {k: after[k] - before[k] for k in before}


def accepted(standin, r, ident):
    """r is a 200 receipt of ident's record, and the record is in Kafka."""
    assert r.status_code == 200, (r.status_code, r.text)
    receipt = r.json()
    assert receipt["id"] == ident and "deadletter" not in receipt, receipt
    m = read_at(standin.bootstrap, receipt["topic"], receipt["partition"], receipt["offset"])
    rec = json.loads(m.value())
    assert rec["id"] == ident and rec["id"] == receipt["id"]
    return receipt, rec


def refused(r):
    assert r.status_code == 401, (r.status_code, r.text)
    answer = r.json()
    assert answer["error"] == "auth_invalid", answer
    assert isinstance(answer.get("message"), str) and answer["message"]
    return answer


def failed(r):
    """A failure answer: a failure status, Retry-After, auth_unavailable."""
    assert r.status_code in FAILURE_STATUSES, (r.status_code, r.text)
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"] == "auth_unavailable", r.text


@pytest.fixture(scope="module")
def api():
    with ApiStandin() as a:
        yield a


@pytest.fixture(scope="module")
def plain(standin, api):
    """Shoperti looked up on the plain-HTTP stand-in (defaults: cache 300 s,
    timeout 2000 ms), logging at debug."""
    with bridge(standin, api_url(api), env={"BRIDGE_LOG_LEVEL": "debug"}) as b:
        yield b


# ---- 1. confirmed ----

def test_confirmed_event_is_produced(standin, api, plain):
    ident = "evt_1001"
    api.event(ident)
    before = counters(plain)
    body = hook(ident)
    r = post(plain, body)
    receipt, rec = accepted(standin, r, ident)
    assert receipt["topic"] == TOPIC and receipt["type"] == "shoperti.orders.created"
    assert rec["data"] == body and rec["providerevent"] == "orders/created"
    # the API was asked once, for that id, with the credential
    seen = [q for q in api.requests if q["id"] == ident]
    assert len(seen) == 1, seen
    assert seen[0]["path"] == "/v1/events/evt_1001"
    assert seen[0]["headers"].get("authorization") == f"Bearer {TOKEN}"
    assert seen[0]["headers"].get("host") == f"127.0.0.1:{api.port}"
    d = delta(before, counters(plain))
    assert d == {"confirmed": 1, "refused": 0, "failed": 0, "cached": 0, "auth_failures": 0}, d


# ---- 2. refused: the API does not know the event ----

def test_unknown_event_is_refused(standin, api, plain):
    before_m = counters(plain)
    before = snapshot(standin)
    r = post(plain, hook("evt_unknown_404"))  # no answer configured: the default 404
    refused(r)
    assert api.count("evt_unknown_404") == 1
    assert snapshot(standin) == before, "a refused webhook reached Kafka"
    d = delta(before_m, counters(plain))
    assert d["auth_failures"] == 1 and d["refused"] == 1 and d["confirmed"] == 0, d

    # the other answers that mean "not this account's event"
    for status in (410, 401, 403):
        ident = f"evt_status_{status}"
        api.answer(ident, status=status)
        refused(post(plain, hook(ident)))
    assert snapshot(standin) == before
    d = delta(before_m, counters(plain))
    assert d["auth_failures"] == 4 and d["refused"] == 4 and d["failed"] == 0, d

    # a refusal is not remembered: the retry asks again, and is confirmed
    # once the API knows the event
    refused(post(plain, hook("evt_unknown_404")))
    assert api.count("evt_unknown_404") == 2
    api.event("evt_unknown_404")
    accepted(standin, post(plain, hook("evt_unknown_404")), "evt_unknown_404")
    assert api.count("evt_unknown_404") == 3


# ---- 3. the API knows the id with another type ----

def test_other_topic_is_refused(standin, api, plain):
    api.event("evt_paid", topic="orders/paid")
    before = snapshot(standin)
    answer = refused(post(plain, hook("evt_paid", topic="orders/created")))
    assert "/topic" in answer["message"], answer
    assert snapshot(standin) == before
    assert api.count("evt_paid") == 1
    # its real type is confirmed (a different topic: only its own changes)
    accepted(standin, post(plain, hook("evt_paid", topic="orders/paid")), "evt_paid")
    # a confirmation does not stand for another type of the same id
    api.event("evt_paid", topic="orders/cancelled")
    refused(post(plain, hook("evt_paid", topic="orders/created")))
    assert api.count("evt_paid") == 3


# ---- a webhook that cannot be checked ----

UNCHECKABLE = {
    "no-topic": {"id": "evt_no_topic", "data": {"id": "ord_42"}},
    "id-missing": {"topic": "orders/created", "data": {"id": "ord_42"}},
    "id-empty": {"topic": "orders/created", "id": "", "data": {"id": "ord_42"}},
    "id-null": {"topic": "orders/created", "id": None, "data": {"id": "ord_42"}},
    "id-object": {"topic": "orders/created", "id": {"v": "evt_1"}, "data": {"id": "ord_42"}},
    "id-too-long": {"topic": "orders/created", "id": "evt_" + "x" * 400, "data": {"id": "ord_42"}},
}


@pytest.mark.parametrize("case", list(UNCHECKABLE))
def test_webhook_without_id_or_matched_field_is_refused_without_asking(standin, api, plain,
                                                                       case):
    """Nothing to ask the API about (no usable id, or no value at the
    matched pointer): 401, nothing produced, and the API not asked (it
    answers 500 here, so an asked API shows as a failure answer)."""
    api.default = {"status": 500}
    try:
        n = api.count()
        before = snapshot(standin)
        r = post(plain, UNCHECKABLE[case])
        asked = [q["path"] for q in api.requests[n:]]
        assert r.status_code == 401, (
            f"{case}: {r.status_code} {r.text}; the API was asked {asked}")
        refused(r)
        assert asked == [], f"{case}: the API was asked for an id the webhook lacks: {asked}"
        assert snapshot(standin) == before
    finally:
        api.default = {"status": 404}


# ---- 4. the API is down ----

def test_api_down_is_a_failure(standin):
    url = f"http://127.0.0.1:{free_port()}/v1/events/{{id}}"  # nothing listens there
    with bridge(standin, url, env={"BRIDGE_PROVIDER_SHOPERTI_FAILURE_STATUSES": "502,504"}) as b:
        before = snapshot(standin)
        statuses = []
        for i in range(4):
            r = post(b, hook(f"evt_down_{i}"))
            failed(r)
            statuses.append(r.status_code)
        # the provider's own rotation, not a fixed 503
        assert set(statuses) == {502, 504}, statuses
        assert snapshot(standin) == before
        c = counters(b)
        assert c["failed"] == 4 and c["auth_failures"] == 0 and c["confirmed"] == 0, c



def test_out_of_descriptors_is_a_failure_and_the_bridge_goes_on(standin, api):
    """No descriptor for the API's connection: libh2o fails the connect at
    once, inside the call that starts the look-up (the path where an answer
    could come before the request was attached). A failure answer, nothing
    produced, no sanitizer report; with descriptors back, the look-ups work."""
    import resource
    with bridge(standin, api_url(api), cache_s="0") as b:
        api.event("evt_fd_ok")
        accepted(standin, post(b, hook("evt_fd_ok")), "evt_fd_ok")  # a keep-alive connection
        pid = b.proc.pid
        # the API's idle connection leaves the pool (idle 2 s, checked by
        # libh2o's pool every second: gone 2 to 3 s after its use): a new
        # one is needed
        time.sleep(3.5)
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)

        def starve():
            """The limit bounds descriptor numbers: the lowest free one is the
            limit. Taken once the descriptors stop changing (the pool's idle
            connection closes on the loop's timer, late on a busy machine),
            and set again before each request (a connection closed since
            would free a lower number)."""
            fds, deadline = None, time.time() + 10
            while time.time() < deadline:
                now = {int(f) for f in os.listdir(f"/proc/{pid}/fd")}
                if now == fds:
                    break
                fds = now
                time.sleep(0.3)
            resource.prlimit(pid, resource.RLIMIT_NOFILE,
                             (min(set(range(len(fds) + 1)) - fds), hard))

        try:
            before = snapshot(standin)
            calls = api.count()
            for i in range(3):
                api.event(f"evt_fd_{i}")
                starve()
                failed(post(b, hook(f"evt_fd_{i}")))
            assert api.count() == calls  # never reached the API
            assert snapshot(standin) == before
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        accepted(standin, post(b, hook("evt_fd_0")), "evt_fd_0")


# ---- 5. the API is slow ----

def test_slow_api_is_cut_at_the_timeout(standin):
    with ApiStandin() as api, bridge(standin, api_url(api), timeout_ms="300",
                                     max_concurrent="1") as b:
        api.answer("evt_slow", status=200, delay=2.0,
                   json={"id": "evt_slow", "topic": "orders/created"})
        api.event("evt_fast")
        before = snapshot(standin)
        r = post(b, hook("evt_slow"))
        failed(r)
        assert r.elapsed_s < 1.5, f"answered after {r.elapsed_s:.2f} s, the bound is 300 ms"
        assert r.elapsed_s >= 0.25, r.elapsed_s
        # two at once with one look-up allowed: the one that waits is bounded too
        results = [None, None]

        def one(i):
            results[i] = post(b, hook("evt_slow"))

        ts = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for x in results:
            failed(x)
            assert x.elapsed_s < 1.5, x.elapsed_s
        assert snapshot(standin) == before
        # the slot is free again: a quick answer is confirmed
        accepted(standin, post(b, hook("evt_fast")), "evt_fast")
        c = counters(b)
        assert c["failed"] == 3 and c["confirmed"] == 1, c


# ---- 6. answers that are not an answer ----

GARBAGE = {
    "evt_html": {"status": 200, "body": b"<html>all good</html>", "ctype": "text/html"},
    "evt_json_trailing": {"status": 200,
                          "body": b'{"id":"evt_json_trailing","topic":"orders/created"} x'},
    "evt_empty": {"status": 200, "body": b""},
    "evt_not_http": {"raw": b"SSH-2.0-OpenSSH_9.2\r\nthis is not HTTP\r\n\r\n"},
    "evt_half_http": {"raw": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"topic\":"},
    "evt_500": {"status": 500},
    "evt_503": {"status": 503},
    "evt_429": {"status": 429},
    "evt_302": {"status": 302, "body": b"{}"},
    "evt_no_field": {"status": 200, "json": {"id": "evt_no_field"}},
    "evt_field_object": {"status": 200, "json": {"id": "evt_field_object",
                                                 "topic": {"name": "orders/created"}}},
    "evt_too_large": {"status": 200, "json": {"id": "evt_too_large", "topic": "orders/created",
                                              "pad": "x" * 70000}},
    "evt_too_large_chunked": {"status": 200, "chunked": True,
                              "json": {"id": "evt_too_large_chunked",
                                       "topic": "orders/created", "pad": "x" * 70000}},
}


def test_garbage_answers_are_failures(standin, api, plain):
    for ident, spec in GARBAGE.items():
        api.answer(ident, **spec)
    before_m = counters(plain)
    before = snapshot(standin)
    for ident in GARBAGE:
        r = post(plain, hook(ident))
        assert r.status_code != 200, f"{ident}: confirmed by {GARBAGE[ident]}"
        try:
            failed(r)
        except AssertionError as e:
            raise AssertionError(f"{ident}: {e}") from None
        assert api.count(ident) == 1, (ident, api.count(ident))
    assert snapshot(standin) == before
    d = delta(before_m, counters(plain))
    assert d["failed"] == len(GARBAGE) and d["auth_failures"] == 0 and d["confirmed"] == 0, d
    # just under the size bound, chunked or not, is an answer
    for ident, chunked in (("evt_60k", False), ("evt_60k_chunked", True)):
        api.answer(ident, status=200, chunked=chunked,
                   json={"id": ident, "topic": "orders/created", "pad": "y" * 60000})
        accepted(standin, post(plain, hook(ident)), ident)
    # a failure is not remembered either: once the API answers, it is confirmed
    api.event("evt_500")
    accepted(standin, post(plain, hook("evt_500")), "evt_500")
    # and the bridge is still well
    api.event("evt_after_garbage")
    accepted(standin, post(plain, hook("evt_after_garbage")), "evt_after_garbage")


# ---- 7. the cache ----

def test_confirmations_are_cached(standin, api, plain):
    ident = "evt_cached"
    api.event(ident)
    before = counters(plain)
    r1, r2 = post(plain, hook(ident)), post(plain, hook(ident))
    a, _ = accepted(standin, r1, ident)
    b, _ = accepted(standin, r2, ident)
    assert (a["partition"], a["offset"]) != (b["partition"], b["offset"])  # both produced
    assert api.count(ident) == 1
    d = delta(before, counters(plain))
    assert d["cached"] == 1 and d["confirmed"] == 1, d
    # the same id with another type is not in the cache: asked, and refused
    refused(post(plain, hook(ident, topic="orders/paid")))
    assert api.count(ident) == 2


def test_no_cache_and_cache_bounds(standin):
    """Shoperti with auth.cache_s = 0 asks every time; a provider with
    cache_max = 2 and cache_s = 1 forgets the oldest and the expired. Two
    workers, one cache per provider: a confirmation made on one worker
    serves the other (every post on a new connection)."""
    with ApiStandin() as api:
        config = f"""
[routes]
tiny.* = {TOPIC}
[provider.tiny]
type = /topic
id = /id
auth = api-lookup
auth.url = {api_url(api)}
auth.match = /topic
auth.cache_s = 1
auth.cache_max = 2
"""
        with bridge(standin, api_url(api), config=config, threads=2, cache_s="0") as b:
            def fresh(body, provider):  # a new connection: any of the workers
                r = requests.post(f"{b.base}/webhooks/{provider}", json=body, timeout=10)
                assert r.status_code == 200, r.text
                return r

            api.event("evt_nocache")
            for _ in range(3):
                accepted(standin, fresh(hook("evt_nocache"), "shoperti"), "evt_nocache")
            assert api.count("evt_nocache") == 3
            c = counters(b)
            assert c["cached"] == 0 and c["confirmed"] == 3, c

            for i in "abc":
                api.event(f"evt_tiny_{i}")
            fresh(hook("evt_tiny_a"), "tiny")
            for _ in range(4):
                fresh(hook("evt_tiny_a"), "tiny")  # cached, on whichever worker
            assert api.count("evt_tiny_a") == 1
            fresh(hook("evt_tiny_b"), "tiny")
            fresh(hook("evt_tiny_c"), "tiny")  # over cache_max: a is the oldest
            fresh(hook("evt_tiny_c"), "tiny")
            assert api.count("evt_tiny_c") == 1
            fresh(hook("evt_tiny_a"), "tiny")
            assert api.count("evt_tiny_a") == 2, "cache_max = 2 kept a third entry"
            time.sleep(1.2)  # past cache_s
            fresh(hook("evt_tiny_a"), "tiny")
            assert api.count("evt_tiny_a") == 3, "an entry outlived cache_s"
            m = b.metrics()
            assert m['webhook_bridge_auth_lookups_total{provider="tiny",result="cached"}'] == 5
            assert m['webhook_bridge_auth_lookups_total{provider="tiny",result="confirmed"}'] == 5


# ---- 8. ids are percent-encoded ----

IDS = [
    ("evt/1?x=%41 é", "evt%2F1%3Fx%3D%2541%20%C3%A9"),
    ("evt#frag&a=b+c", "evt%23frag%26a%3Db%2Bc"),
    ("evt-._~AZaz09", "evt-._~AZaz09"),
    ("evt😀\"\\", "evt%F0%9F%98%80%22%5C"),
    ("../../admin", "..%2F..%2Fadmin"),
    ("evt\r\nX-Injected: 1", "evt%0D%0AX-Injected%3A%201"),
]


@pytest.mark.parametrize("ident, encoded", IDS, ids=[e for _, e in IDS])
def test_ids_are_percent_encoded(standin, api, plain, ident, encoded):
    api.event(ident)
    n = len(api.requests)
    receipt, rec = accepted(standin, post(plain, hook(ident)), ident)
    paths = [q["path"] for q in api.requests[n:]]
    assert paths == ["/v1/events/" + encoded], paths
    assert "x-injected" not in api.requests[n]["headers"]


# ---- 9. TLS ----

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_cert(d, name, ca, san):
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
            f"/CN={san.split(',')[0].split(':')[1]}", cwd=d)
    (d / f"{name}.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            cwd=d)
    return str(d / f"{name}.pem"), str(d / f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=webhook-bridge test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return {"ca": str(d / "ca.pem"),
            "localhost": make_cert(d, "localhost", "ca", "DNS:localhost,IP:127.0.0.1,IP:::1"),
            "other": make_cert(d, "other", "ca", "DNS:other.example")}


TLS_PROVIDERS = """
[provider.{name}]
type = /topic
id = /id
auth = api-lookup
auth.url = {url}
auth.match = /topic
auth.scheme = Bearer
auth.secret_env = SHOPERTI_TOKEN
{extra}
"""


@pytest.fixture(scope="module")
def tls(standin, pki):
    """One bridge, a provider per way of reaching a TLS stand-in: Shoperti
    (environment) on https://localhost with the test CA; by configuration
    the same on 127.0.0.1 and [::1] (IP names), without the CA file (the
    system's CAs), and with the CA against a certificate for another name.
    The confirmed ones are routed to Shoperti's topic."""
    good = ApiStandin(hosts=("127.0.0.1", "::1"), tls=pki["localhost"])
    other = ApiStandin(hosts=("127.0.0.1",), tls=pki["other"])
    ca = f"auth.ca_file = {pki['ca']}"
    provs = {"tlsip": (api_url(good, "127.0.0.1", "https"), ca),
             "tlsnoca": (api_url(good, "localhost", "https"), ""),
             "tlswrong": (api_url(other, "localhost", "https"), ca),
             "tlswrongip": (api_url(other, "127.0.0.1", "https"), ca)}
    if "::1" in good.hosts:
        provs["tlssix"] = (api_url(good, "[::1]", "https"), ca)
    config = "[routes]\n" + "".join(f"{n}.* = {TOPIC}\n" for n in provs)
    config += "".join(TLS_PROVIDERS.format(name=n, url=u, extra=x) for n, (u, x) in provs.items())
    try:
        with bridge(standin, api_url(good, "localhost", "https"), config=config,
                    ca_file=pki["ca"]) as b:
            yield b, good, other, provs
    finally:
        good.close()
        other.close()


def test_tls_verified_with_the_ca_file(standin, tls):
    b, good, other, provs = tls
    for prov, host in [("shoperti", "localhost"), ("tlsip", "127.0.0.1"), ("tlssix", "[::1]")]:
        if prov not in provs:
            continue  # no IPv6 here
        ident = f"evt_tls_{prov}"
        good.event(ident)
        accepted(standin, post(b, hook(ident), prov), ident)
        q = [x for x in good.requests if x["id"] == ident]
        assert len(q) == 1, (prov, q)
        assert q[0]["headers"].get("authorization") == f"Bearer {TOKEN}"
        assert q[0]["headers"].get("host") == f"{host}:{good.port}"
        refused(post(b, hook(ident + "_unknown"), prov))
        assert good.count(ident + "_unknown") == 1


def test_tls_untrusted_ca_is_a_failure(standin, tls):
    b, good, other, provs = tls
    good.event("evt_tls_noca")  # it would be confirmed, were the server trusted
    before = snapshot(standin)
    for _ in range(2):
        failed(post(b, hook("evt_tls_noca"), "tlsnoca"))
    assert snapshot(standin) == before
    # the credential never went to a server that was not verified
    assert good.count("evt_tls_noca") == 0, good.requests
    assert good.tls_failures >= 1


def test_tls_wrong_host_name_is_a_failure(standin, tls):
    b, good, other, provs = tls
    other.event("evt_tls_wrong")
    before = snapshot(standin)
    for prov in ("tlswrong", "tlswrongip"):
        failed(post(b, hook("evt_tls_wrong"), prov))
    assert snapshot(standin) == before
    assert other.count() == 0, other.requests
    assert other.tls_failures >= 2


# ---- 10. the worker keeps serving while look-ups wait ----

def test_other_providers_served_while_lookups_wait(standin):
    """Eight look-ups, four at a time, each answered after 1.5 s: while they
    wait, Piriod's webhooks are answered at once on the same (only) worker."""
    n = 8
    with ApiStandin() as api, bridge(standin, api_url(api), timeout_ms="7000",
                                     max_concurrent="4") as b:
        # warm up: the topics exist, the first produce is behind us
        api.event("evt_warm")
        pay = {"event": "payment.created", "object_id": "pay_0"}
        warm = {}
        ws = [threading.Thread(target=lambda: warm.update(s=post(b, hook("evt_warm")))),
              threading.Thread(target=lambda: warm.update(p=post(b, pay, "piriod")))]
        for t in ws:
            t.start()
        for t in ws:
            t.join()
        accepted(standin, warm["s"], "evt_warm")
        assert warm["p"].status_code == 200, warm["p"].text
        ids = [f"evt_wait_{i:02d}" for i in range(n)]
        for i in ids:
            api.event(i)
        api.reset_max_active()
        api.delay = 1.5
        results = {}

        def one(i):
            r = post(b, hook(i))
            results[i] = (r, time.monotonic())

        t0 = time.monotonic()
        threads = []
        for i in ids:  # in a known order, for the FIFO check
            threads.append(threading.Thread(target=one, args=(i,)))
            threads[-1].start()
            time.sleep(0.02)
        time.sleep(0.1)
        piriod = []
        for k in range(5):
            r = post(b, {"event": "payment.created", "object_id": f"pay_{k + 1}"}, "piriod")
            assert r.status_code == 200, r.text
            piriod.append(r.elapsed_s)
        t_piriod = time.monotonic()
        assert not results, "a Shoperti look-up ended before the Piriod posts: not a test"
        assert max(piriod) < 0.3, f"Piriod waited behind the look-ups: {piriod}"
        assert t_piriod - t0 < 1.5
        for t in threads:
            t.join(30)
        for i in ids:
            assert results[i][0].status_code == 200, (i, results[i][0].text)
            assert results[i][0].json()["id"] == i
        assert api.max_active == 4, f"the API had up to {api.max_active} requests at once"
        # first come, first asked: the i-th group of four is ids 4i..4i+3
        order = [q["id"] for q in api.requests if q["id"] in results]
        assert len(order) == n
        for g in range(0, n, 4):
            assert set(order[g:g + 4]) == set(ids[g:g + 4]), order
        # two rounds of 1.5 s
        last = max(t for _, t in results.values()) - t0
        assert 2.9 < last < 5.5, last



def test_spooling_provider_looks_up_first_then_spools(tmp_path):
    """api-lookup with the spool on: the look-up comes first; a confirmed
    event Kafka cannot take (every broker down) is answered 200 "spooled"
    and replayed once Kafka is back; a refused one is answered 401 and
    never reaches the spool nor Kafka."""
    from harness import find_ids
    env = {"BRIDGE_SPOOL_DIR": str(tmp_path / "spool"), "BRIDGE_PROVIDER_SHOPERTI_SPOOL": "on",
           "BRIDGE_PROVIDER_SHOPERTI_SPOOL_AFTER_MS": "1000"}
    with Standin() as kafka, ApiStandin() as api, \
            bridge(kafka, api_url(api), timeout_ms="1500", env=env) as b:
        b.wait_kafka_reachable(True)
        for i in range(20):  # until one is acknowledged directly (the producer id is known)
            api.event(f"evt_sp_warm_{i}")
            r = post(b, hook(f"evt_sp_warm_{i}"))
            assert r.status_code == 200, r.text
            if "offset" in r.json():
                break
        deadline = time.monotonic() + 30
        while b.metrics().get("webhook_bridge_spool_records") != 0:
            assert time.monotonic() < deadline, "the warm-up records stay in the spool"
            time.sleep(0.2)
        before = sum(end_offsets(kafka.bootstrap, TOPIC).values())
        kafka.cmd("down all")
        api.event("evt_sp_ok")
        r = post(b, hook("evt_sp_ok"))
        assert r.status_code == 200 and r.json().get("spooled") is True, r.text
        assert r.elapsed_s < 10, r.elapsed_s
        refused(post(b, hook("evt_sp_unknown")))  # the stand-in does not know it: 404
        assert b.metrics()["webhook_bridge_spool_records"] == 1
        kafka.cmd("up all")
        deadline = time.monotonic() + 30
        while b.metrics().get("webhook_bridge_spool_records") != 0:
            assert time.monotonic() < deadline, "never replayed"
            time.sleep(0.2)
        ends = end_offsets(kafka.bootstrap, TOPIC)
        assert sum(ends.values()) == before + 1  # the confirmed one, once; not the refused
        where = [{"id": "evt_sp_ok", "topic": TOPIC, "partition": p} for p in ends]
        assert set(find_ids(kafka.bootstrap, where, timeout=20)) == {"evt_sp_ok"}


# ---- the drain while look-ups wait ----

@pytest.mark.parametrize("drain_ms", [20000, 300], ids=["drain-long-enough", "drain-cut-short"])
def test_drain_while_lookups_wait(standin, drain_ms):
    """SIGTERM while four look-ups wait for a slow API: within the drain
    they get their true answer (200, in Kafka); cut short, 503 draining and
    nothing produced; the bridge exits 0 either way."""
    with ApiStandin() as api, bridge(standin, api_url(api), timeout_ms="5000",
                                     env={"BRIDGE_DRAIN_TIMEOUT_MS": str(drain_ms)}) as b:
        api.event("evt_drain_warm")
        accepted(standin, post(b, hook("evt_drain_warm")), "evt_drain_warm")
        ids = [f"evt_drain_{drain_ms}_{i}" for i in range(4)]
        for i in ids:
            api.event(i)
        api.delay = 1.0
        before = snapshot(standin)
        results = {}

        def one(i):
            results[i] = post(b, hook(i))

        threads = [threading.Thread(target=one, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while api.count() < 1 + len(ids) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert api.count() == 1 + len(ids), "the look-ups did not reach the API"
        assert b.stop() == 0
        for t in threads:
            t.join(30)
        if drain_ms > 1000:
            for i in ids:
                accepted(standin, results[i], i)
        else:
            for i in ids:
                failed_status = results[i]
                assert failed_status.status_code in FAILURE_STATUSES, failed_status.text
                assert failed_status.json()["error"] == "draining", failed_status.text
                assert "Retry-After" in failed_status.headers
            time.sleep(max(0.0, 1.2 - (time.monotonic() - api.requests[-1]["t"])))
            assert snapshot(standin) == before, "a record was produced after its 503"


# ---- 11. a fourth provider, from configuration alone ----

def test_fourth_provider_from_configuration(standin):
    with ApiStandin(prefixes=("/acme/deliveries/",)) as api:
        config = f"""
[provider.acme]
type = /kind
id = /delivery
subject = /account
auth = api-lookup
auth.url = http://127.0.0.1:{api.port}/acme/deliveries/{{id}}?expand=event
auth.match = /kind=/event/kind, /account=/account_id
auth.header = X-Api-Key
auth.secret_env = ACME_KEY
auth.cache_s = 0
"""
        api.answer("d-1", status=200, json={"event": {"kind": "thing.happened"},
                                            "account_id": "acc-9"})
        api.answer("d-3", status=200, json={"event": {"kind": "thing.happened"},
                                            "account_id": "acc-other"})
        with bridge(standin, "http://127.0.0.1:9/unused/{id}", config=config,
                    env={"ACME_KEY": ACME_KEY}) as b:
            body = {"kind": "thing.happened", "delivery": "d-1", "account": "acc-9"}
            receipt, rec = accepted(standin, post(b, body, "acme"), "d-1")
            assert receipt["type"] == "acme.thing.happened", receipt
            assert rec["subject"] == "acc-9"
            q = api.requests[-1]
            assert q["path"] == "/acme/deliveries/d-1?expand=event", q
            assert q["headers"].get("x-api-key") == ACME_KEY and "authorization" not in q["headers"]
            before = sum(end_offsets(standin.bootstrap, receipt["topic"]).values())
            refused(post(b, dict(body, delivery="d-2"), "acme"))  # unknown: 404
            refused(post(b, dict(body, delivery="d-3"), "acme"))  # another account
            refused(post(b, dict(body, kind="thing.vanished"), "acme"))  # another kind
            assert sum(end_offsets(standin.bootstrap, receipt["topic"]).values()) == before
            assert api.count("d-1") == 2 and api.count("d-2") == 1 and api.count("d-3") == 1
            m = b.metrics()
            lookups = 'webhook_bridge_auth_lookups_total{provider="acme",result="%s"}'
            assert m.get(lookups % "confirmed") == 1 and m.get(lookups % "refused") == 3, m
            assert m.get('webhook_bridge_auth_failures_total{provider="acme"}') == 3


# ---- 12. start-up refuses bad settings ----

def check_config(env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    e.update({"BRIDGE_PROVIDER_SHOPERTI_AUTH": "api-lookup",
              "BRIDGE_PROVIDER_SHOPERTI_AUTH_URL": "http://127.0.0.1:9/e/{id}",
              "BRIDGE_PROVIDER_SHOPERTI_AUTH_MATCH": "/topic",
              "BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV": "SHOPERTI_TOKEN",
              "SHOPERTI_TOKEN": TOKEN,
              "ASAN_OPTIONS": "detect_leaks=1:exitcode=86"})
    e.update(env)
    e = {k: v for k, v in e.items() if v is not None}
    return subprocess.run([BRIDGE, *args], env=e, capture_output=True, text=True, timeout=30)


URL_KEY = "BRIDGE_PROVIDER_SHOPERTI_AUTH_URL"
BAD = [
    ({URL_KEY: "http://192.0.2.1/e/{id}"}, (URL_KEY, "loopback")),
    ({URL_KEY: "http://127.0.0.1.example.com/e/{id}"}, (URL_KEY, "loopback")),
    ({URL_KEY: "http://localhost.example/e/{id}"}, (URL_KEY, "loopback")),
    ({URL_KEY: "http://[2001:db8::1]/e/{id}"}, (URL_KEY, "loopback")),
    ({URL_KEY: "https://api.example.com/v1/events/"}, (URL_KEY, "{id}")),
    ({URL_KEY: "ftp://127.0.0.1/{id}"}, (URL_KEY,)),
    ({URL_KEY: None}, ("auth.url",)),
    ({"BRIDGE_PROVIDER_SHOPERTI_AUTH_TIMEOUT_MS": "9600"}, ("auth.timeout_ms", "deadline_ms")),
    ({"BRIDGE_PROVIDER_SHOPERTI_AUTH_TIMEOUT_MS": "2000",
      "BRIDGE_PROVIDER_SHOPERTI_DEADLINE_MS": "2400"}, ("auth.timeout_ms", "deadline_ms")),
    ({"BRIDGE_PROVIDER_SHOPERTI_AUTH_MATCH": "topic"}, ("BRIDGE_PROVIDER_SHOPERTI_AUTH_MATCH",)),
    ({"BRIDGE_PROVIDER_SHOPERTI_AUTH_CA_FILE": "/etc/hosts"}, ("auth.ca_file",)),
    ({URL_KEY: "https://localhost/e/{id}",
      "BRIDGE_PROVIDER_SHOPERTI_AUTH_CA_FILE": "/nonexistent/ca.pem"}, ("auth.ca_file",)),
]


@pytest.mark.parametrize("env, needles", BAD, ids=[
    "http-not-loopback", "http-loopback-lookalike", "http-localhost-lookalike", "http-ipv6",
    "no-id", "not-http", "no-url", "timeout-over-deadline", "timeout-over-short-deadline",
    "match-not-a-pointer", "ca-file-on-http", "ca-file-missing"])
def test_bad_settings_stop_start_up(env, needles):
    r = check_config(env, "--check-config")
    out = r.stderr + r.stdout
    assert r.returncode == 1, out
    for n in needles:
        assert n in out, (n, out)
    assert TOKEN not in out
    for m in SANITIZER_MARKERS:
        assert m not in out, out


def test_good_settings_pass_and_bad_ones_stop_the_real_start(standin):
    for url in ("http://127.0.0.1:9/e/{id}", "http://[::1]:9/e/{id}", "http://localhost:9/e/{id}",
                "http://127.1.2.3:9/e/{id}?x={id}", "https://api.example.com/v1/events/{id}"):
        r = check_config({URL_KEY: url, "BRIDGE_PROVIDER_SHOPERTI_AUTH_TIMEOUT_MS": "9500"},
                         "--check-config")
        assert r.returncode == 0, (url, r.stderr)
    b = Bridge(standin.bootstrap, env=lookup_env("http://192.0.2.1/e/{id}"), wait_ready=False)
    try:
        rc = b.proc.wait(30)
        out = logs_of(b)
        assert rc != 0, out
        assert URL_KEY in out and "loopback" in out, out
        assert TOKEN not in out
        b.check_sanitizers()
    finally:
        b.stop()
        b.tmp.cleanup()


# ---- 13. the credential is in no log line ----

def test_credential_in_no_log_line(standin, api, plain):
    """The module's bridge logs at debug and has served every case above;
    here the API echoes the credential back in what it answers. Every
    other bridge's logs were checked when it stopped (bridge())."""
    api.event("evt_log_ok")
    api.answer("evt_log_500", status=500, body=json.dumps({"echo": TOKEN}).encode())
    api.answer("evt_log_401", status=401, body=f"bad token {TOKEN}".encode())
    api.answer("evt_log_raw", raw=f"HTTP/9 {TOKEN}\r\n\r\n".encode())
    api.answer("evt_log_nojson", status=200, body=f"token={TOKEN}".encode())
    n = len(api.requests)
    accepted(standin, post(plain, hook("evt_log_ok")), "evt_log_ok")
    failed(post(plain, hook("evt_log_500")))
    refused(post(plain, hook("evt_log_401")))
    failed(post(plain, hook("evt_log_raw")))
    failed(post(plain, hook("evt_log_nojson")))
    assert [q["headers"].get("authorization") for q in api.requests[n:]] == [f"Bearer {TOKEN}"] * 5
    for path in ("/metrics", "/readyz", "/healthz"):
        assert TOKEN not in requests.get(plain.admin + path, timeout=5).text
    time.sleep(0.2)  # the worker writes its log lines once per loop turn
    live = logs_of(plain)
    assert "evt_log_500" in live, "the log does not show the requests: the check is empty"
    for text in LOGS + [live]:
        for s in SECRETS:
            assert s not in text, "the API credential is in a log"
