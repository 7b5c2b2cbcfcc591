"""Every row of the contract's table, for each provider, through the real
binary and the Kafka stand-in; records are read back at the receipts'
offsets and validated against both schemas."""
import json
import socket

import pytest

import harness
import wbschema


@pytest.fixture(scope="module")
def kafka():
    with harness.Standin() as s:
        yield s


@pytest.fixture(scope="module")
def bridge(kafka):
    env = {"BRIDGE_PROVIDER_PIRIOD_MAX_BODY": "4096"}
    with harness.Bridge(kafka.bootstrap, env=env) as b:
        b.wait_ready()
        yield b


def record_of(kafka, receipt):
    m = harness.read_at(kafka.bootstrap, receipt["topic"], receipt["partition"], receipt["offset"])
    return m, json.loads(m.value())


def produced(kafka):
    topics = harness.all_topics(kafka.bootstrap)
    return harness.total_records(kafka.bootstrap, topics)


@pytest.mark.parametrize("provider,path", [(p, f) for p in wbschema.PROVIDERS
                                           for f in wbschema.FIXTURES[p]],
                         ids=lambda x: getattr(x, "name", x))
def test_provider_example_becomes_one_record(kafka, bridge, provider, path):
    raw = wbschema.fixture_bytes(path)
    body = json.loads(raw)
    wbschema.validate_provider(provider, body)
    r = bridge.post(provider, raw)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert set(receipt) == {"id", "type", "topic", "partition", "offset"}
    assert receipt["type"] == wbschema.expected_type(provider, receipt_event(body, provider))
    assert receipt["topic"] == "webhooks." + receipt["type"]
    m, rec = record_of(kafka, receipt)
    wbschema.validate_record(rec)
    assert rec["data"] == body
    assert rec["id"] == receipt["id"] and rec["type"] == receipt["type"]
    assert rec["provider"] == provider
    assert harness.headers_of(m)["content-type"] == "application/cloudevents+json; charset=utf-8"
    key = m.key().decode()
    assert key == rec.get("subject", rec["id"])
    if provider == "bonifiq":
        assert rec["id"] == body["Uuid"]
        assert rec["time"] == body["Timestamp"] + "Z"
        assert rec["subject"] == body["Payload"]["Customer"]["Id"]
    if provider == "piriod":
        assert rec["subject"] == body["object_id"]
    if provider == "shoperti":
        assert rec["id"] == body["id"]


def receipt_event(body, provider):
    if provider == "piriod":
        return body["event"]
    if provider == "bonifiq":
        return body["TopicName"]
    return body.get("topic") or body.get("type") or body.get("event")


def test_unicode_and_escapes_survive(kafka, bridge):
    raw = ('{"event":"Pagó/Creado \\ud83d\\ude00","object_id":"ob\\u006a-\\"1\\"\\n\\u0000é",'
           '"note":"\\u2028\\u2029 \\\\ \\/ \\t","deep":[[[{"x":"\\ud800"}]]]}').encode()
    r = bridge.post("piriod", raw)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["type"] == "piriod.pag.creado"
    m, rec = record_of(kafka, receipt)
    wbschema.validate_record(rec)
    assert rec["data"] == json.loads(raw)
    assert rec["subject"] == 'obj-"1"\n\x00é'
    assert rec["providerevent"] == "Pagó/Creado \U0001F600"
    assert m.key().decode() == 'obj-"1"\n\x00é'


def test_type_normalization(kafka, bridge):
    r = bridge.post("bonifiq", {"Uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
                                "Timestamp": "2024-03-01T13:16:11", "Topic": 0,
                                "TopicName": "__Point__Add__", "Payload": {}})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "bonifiq.point.add"
    assert r.json()["topic"] == "webhooks.bonifiq.point.add"


def test_http2_prior_knowledge(kafka, bridge, tmp_path):
    import subprocess
    body = tmp_path / "b.json"
    body.write_text('{"event":"payment.created","object_id":"h2"}')
    out = subprocess.run(["nghttp", "-d", str(body), "-H", "content-type: application/json",
                          f"{bridge.base}/webhooks/piriod"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    receipt = json.loads(out.stdout)
    _, rec = record_of(kafka, receipt)
    assert rec["subject"] == "h2"


BAD_JSON = [
    b"", b"   ", b"{", b'{"event":"a",}', b'{"event":"a"} {}', b'{"event":"a"}x',
    b"\xef\xbb\xbf{}", b'{"event":"\xff"}', b'{"event":"a\x01"}', b"{'event':'a'}",
    b'{"event":01}', b'{"event":"\\x"}', b"NaN", b'[1,]',
]


@pytest.mark.parametrize("raw", BAD_JSON, ids=repr)
def test_not_json_is_400_and_nothing_produced(kafka, bridge, raw):
    before = produced(kafka)
    r = bridge.post("piriod", raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_json"
    assert set(r.json()) == {"error", "message"}
    assert produced(kafka) == before


def test_too_deep_is_400(kafka, bridge):
    r = bridge.post("shoperti", "[" * 65 + "]" * 65)
    assert r.status_code == 400 and r.json()["error"] == "invalid_json"
    r = bridge.post("shoperti", '{"id":"x","topic":"a","data":' + "[" * 60 + "]" * 60 + "}")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("provider,path", [(p, f) for p in wbschema.PROVIDERS
                                           for f in wbschema.INVALID_SHAPE_FIXTURES[p]],
                         ids=lambda x: getattr(x, "name", x))
def test_wrong_shape_goes_to_deadletter(kafka, bridge, provider, path):
    raw = wbschema.fixture_bytes(path)
    r = bridge.post(provider, raw)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["deadletter"] is True
    assert receipt["topic"] == "webhooks.deadletter"
    assert receipt["type"] == f"{provider}.deadletter"
    m, rec = record_of(kafka, receipt)
    wbschema.validate_record(rec)
    body = json.loads(raw)
    if isinstance(body, dict):
        assert rec["data"] == body
    else:  # CloudEvents data is an object or a string: the text of the body
        assert rec["data"] == raw.decode()
    reason = harness.headers_of(m)["deadletter-reason"]
    assert reason and rec["deadletterreason"] == reason


def test_unknown_paths_are_404(kafka, bridge):
    before = produced(kafka)
    for path in ("/", "/webhooks", "/webhooks/", "/webhooks/stripe", "/webhooks/piriod/x/y",
                 "/webhooks/piriod/token-without-path-auth", "/other"):
        r = bridge.post(None, {"event": "a"}, path=path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.json()["error"] == "not_found"
    assert produced(kafka) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(bridge, method):
    r = bridge.session.request(method, bridge.base + "/webhooks/bonifiq", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    assert r.json()["error"] == "method_not_allowed"


def test_body_over_limit_is_413(kafka, bridge):
    before = produced(kafka)
    body = json.dumps({"event": "a", "object_id": "x" * 5000})
    r = bridge.post("piriod", body)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    r = bridge.post("piriod", json.dumps({"event": "a", "object_id": "x" * 4000}))
    assert r.status_code == 200
    # the default limit of the other providers is 1 MiB
    big = json.dumps({"id": "big", "topic": "t", "data": {"x": "y" * (1024 * 1024)}})
    r = bridge.post("shoperti", big)
    assert r.status_code == 413
    assert produced(kafka) == before + 1


@pytest.mark.parametrize("ctype,status", [("text/plain", 415), ("application/xml", 415),
                                          ("application/x-www-form-urlencoded", 415),
                                          ("application/json; charset=utf-8", 200),
                                          ("application/cloudevents+json", 200),
                                          ("text/json", 200), (None, 200)])
def test_content_type(kafka, bridge, ctype, status):
    headers = {"Content-Type": ctype}
    r = bridge.post("piriod", {"event": "a", "object_id": "ct"}, headers=headers)
    assert r.status_code == status, (ctype, r.text)
    if status == 415:
        assert r.json()["error"] == "unsupported_media_type"


def test_never_410_nor_3xx_and_errors_are_json(bridge):
    for path in ("/webhooks/piriod", "/webhooks/piriod/", "/WEBHOOKS/piriod", "/webhooks/../x"):
        r = bridge.session.post(bridge.base + path, data=b"{}", allow_redirects=False,
                                timeout=10)
        assert r.status_code not in (410,) and not 300 <= r.status_code < 400, path
        if r.status_code != 200:
            assert "error" in r.json()


def test_keep_alive_serves_many_requests_on_one_connection(bridge):
    s = socket.create_connection(("127.0.0.1", bridge.port))
    body = b'{"event":"ka","object_id":"1"}'
    req = (b"POST /webhooks/piriod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    s.sendall(req * 5)
    data = b""
    s.settimeout(20)
    while data.count(b"HTTP/1.1 200") < 5:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    s.close()
