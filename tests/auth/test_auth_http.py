"""Provider authentication end to end: the real webhook-bridge binary, the
Kafka stand-in, real HTTP requests.

Requests are signed by implementations nobody here wrote: Python's hmac for
the HMAC method and the npm `standardwebhooks` package (the scheme's
reference library, tests/node_modules) for Standard Webhooks. Every method
accepts a correct request (200, the record is in Kafka) and answers every
bad one with 401 and a stable code while the end offsets of the topic, and
the record count of every topic, stay where they were. With real brokers a
provider without a method stops start-up unless it says auth = none.
"""
import base64
import hashlib
import hmac
import json
import pathlib
import secrets
import shutil
import subprocess
import time

import pytest
from harness import Bridge, all_topics, end_offsets, read_at, total_records

TESTS = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
PIRIOD_BODY = (FIXTURES / "piriod" / "payment-created.json").read_bytes()
SHOPERTI_BODY = (FIXTURES / "shoperti" / "order-created.json").read_bytes()
BONIFIQ_BODY = (FIXTURES / "bonifiq" / "point-add.json").read_bytes()

# Secrets of this run, generated fresh; none may show in an answer or a log.
HDR_OLD = "bq-" + secrets.token_urlsafe(18)
HDR_NEW = "bq-" + secrets.token_urlsafe(18)
HDR_STORE = "store-" + secrets.token_hex(6)
HMAC_OLD = secrets.token_hex(20)
HMAC_NEW = secrets.token_hex(20)
SW_OLD = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
SW_NEW = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
PATH_OLD = secrets.token_urlsafe(24)
PATH_NEW = secrets.token_urlsafe(24)
ALL_SECRETS = [HDR_OLD, HDR_NEW, HDR_STORE, HMAC_OLD, HMAC_NEW, SW_OLD, SW_NEW, SW_OLD[6:],
               SW_NEW[6:], PATH_OLD, PATH_NEW]


def one_byte_changed(body: bytes) -> bytes:
    """The same body with one digit changed: still JSON, so only the
    signature can refuse it."""
    for i in range(len(body) - 1, -1, -1):
        if 0x30 <= body[i] <= 0x39:
            return body[:i] + bytes([0x30 + (body[i] - 0x30 + 1) % 10]) + body[i + 1:]
    raise AssertionError("body without a digit")


def hmac_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def hmac_b64(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


SIGN_JS = r"""
const { Webhook } = require("standardwebhooks");
const a = JSON.parse(require("fs").readFileSync(0, "utf8"));
const body = Buffer.from(a.body, "base64").toString("utf8");
process.stdout.write(new Webhook(a.secret).sign(a.id, new Date(a.ts * 1000), body));
"""


def sw_sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """webhook-signature for the message, computed by the npm library."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed")
    if not (TESTS / "node_modules" / "standardwebhooks").is_dir():
        pytest.fail("tests/node_modules/standardwebhooks missing: run npm ci in tests/")
    arg = json.dumps({"secret": secret, "id": msg_id, "ts": ts,
                      "body": base64.b64encode(body).decode()})
    out = subprocess.run(["node", "-e", SIGN_JS], input=arg, cwd=TESTS, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.startswith("v1,"), out
    return out.stdout


def sw_headers(secret, body, msg_id=None, ts=None):
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sw_sign(secret, msg_id, ts, body)}


def snapshot(standin, topic):
    bs = standin.bootstrap
    return end_offsets(bs, topic), total_records(bs, all_topics(bs))


def accept(bridge, standin, provider, body, headers=None, path=None):
    """Posts and expects 200; checks the record is in Kafka at the receipt's
    offset. Returns the receipt."""
    r = bridge.post(provider, body, headers=headers, path=path)
    assert r.status_code == 200, r.text
    receipt = r.json()
    m = read_at(standin.bootstrap, receipt["topic"], receipt["partition"], receipt["offset"])
    assert json.loads(m.value())["id"] == receipt["id"]
    return receipt


def refuse(bridge, standin, topic, code, provider, body, headers=None, path=None):
    """Posts and expects 401 with the stable code, and nothing in Kafka."""
    before = snapshot(standin, topic)
    r = bridge.post(provider, body, headers=headers, path=path)
    assert r.status_code == 401, (r.status_code, r.text)
    answer = r.json()
    assert answer["error"] == code, answer
    assert isinstance(answer.get("message"), str) and answer["message"]
    for s in ALL_SECRETS:
        assert s not in r.text
    assert snapshot(standin, topic) == before, "a refused request reached Kafka"
    return answer


def assert_nothing_leaked(bridge, extra=()):
    logs = bridge.stderr()
    with open(bridge.stdout_path) as f:
        logs += f.read()
    for s in list(ALL_SECRETS) + list(extra):
        assert s not in logs, "a secret or a signature is in the logs"


def auth_failures(bridge, provider):
    return bridge.metrics().get(f'webhook_bridge_auth_failures_total{{provider="{provider}"}}')


# ---- HMAC ----

HMAC_CONFIG = """
[provider.shoperti]
auth = hmac
auth.header = X-Shoperti-Signature
auth.prefix = sha256=
auth.secret_env = SHOPERTI_HMAC_SECRETS
"""


def test_hmac_signed_by_python(standin):
    env = {"SHOPERTI_HMAC_SECRETS": HMAC_OLD, "BRIDGE_PROVIDER_SHOPERTI_AUTH": None}
    with Bridge(standin.bootstrap, env=env, config=HMAC_CONFIG) as b:
        h = "X-Shoperti-Signature"
        good = {h: "sha256=" + hmac_hex(HMAC_OLD, SHOPERTI_BODY)}
        topic = accept(b, standin, "shoperti", SHOPERTI_BODY, good)["topic"]
        # upper-case hex is the same signature
        accept(b, standin, "shoperti", SHOPERTI_BODY,
               {h: "sha256=" + hmac_hex(HMAC_OLD, SHOPERTI_BODY).upper()})

        bad = [
            ("auth_invalid", SHOPERTI_BODY, {h: "sha256=" + hmac_hex(HMAC_NEW, SHOPERTI_BODY)}),
            ("auth_invalid", one_byte_changed(SHOPERTI_BODY), good),
            ("auth_invalid", SHOPERTI_BODY + b" ", good),
            ("auth_missing", SHOPERTI_BODY, None),
            ("auth_missing", SHOPERTI_BODY, {"X-Other-Signature": good[h]}),
            ("auth_invalid", SHOPERTI_BODY, {h: hmac_hex(HMAC_OLD, SHOPERTI_BODY)}),  # no prefix
            ("auth_invalid", SHOPERTI_BODY, {h: "sha256=" + hmac_b64(HMAC_OLD, SHOPERTI_BODY)}),
            ("auth_invalid", SHOPERTI_BODY, {h: "sha256=" + "0" * 64}),
        ]
        for code, body, headers in bad:
            refuse(b, standin, topic, code, "shoperti", body, headers)
        assert auth_failures(b, "shoperti") == len(bad)
        assert_nothing_leaked(b, [good[h][7:]])


def test_hmac_base64_rotation_from_file(standin, tmp_path):
    """Old secret in the environment, new one in a mounted file: both work
    while both are configured; once the old one is gone it is refused."""
    secret_file = tmp_path / "shoperti-hmac"
    secret_file.write_text(f"\n{HMAC_NEW}\n")
    config = f"""
[provider.shoperti]
auth = hmac
auth.header = X-Signature
auth.encoding = base64
auth.secret_file = {secret_file}
"""
    env = {"BRIDGE_PROVIDER_SHOPERTI_AUTH": None,
           "BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV": "SHOPERTI_OLD",
           "SHOPERTI_OLD": HMAC_OLD}
    old = {"X-Signature": hmac_b64(HMAC_OLD, SHOPERTI_BODY)}
    new = {"X-Signature": hmac_b64(HMAC_NEW, SHOPERTI_BODY)}
    with Bridge(standin.bootstrap, env=env, config=config) as b:
        topic = accept(b, standin, "shoperti", SHOPERTI_BODY, old)["topic"]
        accept(b, standin, "shoperti", SHOPERTI_BODY, new)
        refuse(b, standin, topic, "auth_invalid", "shoperti", SHOPERTI_BODY,
               {"X-Signature": hmac_b64("a-third-secret", SHOPERTI_BODY)})
        assert_nothing_leaked(b)
    env.pop("BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_ENV")
    with Bridge(standin.bootstrap, env=env, config=config) as b:
        refuse(b, standin, topic, "auth_invalid", "shoperti", SHOPERTI_BODY, old)
        accept(b, standin, "shoperti", SHOPERTI_BODY, new)


# ---- Standard Webhooks ----

def sw_bridge(standin, secret_env):
    env = {"BRIDGE_PROVIDER_PIRIOD_AUTH": "standard-webhooks",
           "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV": "PIRIOD_WHSEC",
           "PIRIOD_WHSEC": secret_env}
    return Bridge(standin.bootstrap, env=env)


def test_standard_webhooks_signed_by_npm_library(standin):
    with sw_bridge(standin, SW_OLD) as b:
        headers = sw_headers(SW_OLD, PIRIOD_BODY)
        topic = accept(b, standin, "piriod", PIRIOD_BODY, headers)["topic"]

        # the same request with one byte of the body changed
        refuse(b, standin, topic, "auth_invalid", "piriod", one_byte_changed(PIRIOD_BODY),
               headers)

        now = int(time.time())
        bad = [
            ("auth_invalid", PIRIOD_BODY, sw_headers(SW_NEW, PIRIOD_BODY)),  # wrong secret
            ("auth_timestamp", PIRIOD_BODY, sw_headers(SW_OLD, PIRIOD_BODY, ts=now - 400)),
            ("auth_timestamp", PIRIOD_BODY, sw_headers(SW_OLD, PIRIOD_BODY, ts=now + 400)),
            # a replay with a fresh timestamp but the old signature
            ("auth_invalid", PIRIOD_BODY, dict(headers, **{"webhook-timestamp": str(now + 1)})),
            ("auth_invalid", PIRIOD_BODY, dict(headers, **{"webhook-id": "msg_other"})),
            ("auth_invalid", PIRIOD_BODY,
             dict(headers, **{"webhook-signature": "v1a," + headers["webhook-signature"][3:]})),
        ]
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            bad.append(("auth_missing", PIRIOD_BODY,
                        {k: v for k, v in headers.items() if k != name}))
        for code, body, h in bad:
            refuse(b, standin, topic, code, "piriod", body, h)
        assert auth_failures(b, "piriod") == len(bad) + 1

        # several signatures in one header, other versions ignored
        h = sw_headers(SW_OLD, PIRIOD_BODY)
        h["webhook-signature"] = ("v2,xyz " + sw_headers(SW_NEW, PIRIOD_BODY)["webhook-signature"]
                                  + " " + h["webhook-signature"])
        accept(b, standin, "piriod", PIRIOD_BODY, h)
        # within the tolerance either way
        accept(b, standin, "piriod", PIRIOD_BODY, sw_headers(SW_OLD, PIRIOD_BODY, ts=now - 200))
        accept(b, standin, "piriod", PIRIOD_BODY, sw_headers(SW_OLD, PIRIOD_BODY, ts=now + 200))
        assert_nothing_leaked(b, [headers["webhook-signature"][3:]])


def test_standard_webhooks_rotation(standin):
    with sw_bridge(standin, f"{SW_NEW} {SW_OLD}") as b:
        topic = accept(b, standin, "piriod", PIRIOD_BODY, sw_headers(SW_OLD, PIRIOD_BODY))["topic"]
        accept(b, standin, "piriod", PIRIOD_BODY, sw_headers(SW_NEW, PIRIOD_BODY))
        third = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        refuse(b, standin, topic, "auth_invalid", "piriod", PIRIOD_BODY,
               sw_headers(third, PIRIOD_BODY))


# ---- static header ----

def test_static_header(standin, tmp_path):
    tokens = tmp_path / "bonifiq-tokens"
    tokens.write_text(f"{HDR_OLD}\n{HDR_NEW}\n")
    config = f"""
[provider.bonifiq]
auth = header
auth.header = X-Bonifiq-Token
auth.secret_file = {tokens}
auth.header_2 = X-Store
auth.secret_env_2 = BONIFIQ_STORE
"""
    env = {"BRIDGE_PROVIDER_BONIFIQ_AUTH": None, "BONIFIQ_STORE": HDR_STORE}
    with Bridge(standin.bootstrap, env=env, config=config) as b:
        good = {"X-Bonifiq-Token": HDR_OLD, "X-Store": HDR_STORE}
        topic = accept(b, standin, "bonifiq", BONIFIQ_BODY, good)["topic"]
        accept(b, standin, "bonifiq", BONIFIQ_BODY, dict(good, **{"X-Bonifiq-Token": HDR_NEW}))
        accept(b, standin, "bonifiq", BONIFIQ_BODY,
               {"x-bonifiq-token": HDR_NEW, "x-store": HDR_STORE})
        bad = [
            ("auth_invalid", dict(good, **{"X-Bonifiq-Token": HDR_OLD[:-1]})),
            ("auth_invalid", dict(good, **{"X-Bonifiq-Token": HDR_OLD + "x"})),
            ("auth_invalid", dict(good, **{"X-Bonifiq-Token": HDR_STORE})),
            ("auth_missing", {"X-Store": HDR_STORE}),
            ("auth_missing", {"X-Bonifiq-Token": HDR_OLD}),
            ("auth_missing", {}),
        ]
        for code, headers in bad:
            refuse(b, standin, topic, code, "bonifiq", BONIFIQ_BODY, headers)
        assert auth_failures(b, "bonifiq") == len(bad)
        assert_nothing_leaked(b)


# ---- secret path segment ----

def test_secret_path(standin):
    env = {"BRIDGE_PROVIDER_PIRIOD_AUTH": "path",
           "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV": "PIRIOD_PATH_TOKENS",
           "PIRIOD_PATH_TOKENS": f"{PATH_OLD},{PATH_NEW}"}
    with Bridge(standin.bootstrap, env=env) as b:
        topic = accept(b, standin, "piriod", PIRIOD_BODY,
                       path=f"/webhooks/piriod/{PATH_OLD}")["topic"]
        accept(b, standin, "piriod", PIRIOD_BODY, path=f"/webhooks/piriod/{PATH_NEW}")

        def flip(s, i):
            return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]

        for wrong in (flip(PATH_OLD, 0), flip(PATH_OLD, len(PATH_OLD) // 2),
                      flip(PATH_OLD, len(PATH_OLD) - 1), PATH_OLD[:-1], PATH_OLD + "x"):
            refuse(b, standin, topic, "auth_invalid", "piriod", PIRIOD_BODY,
                   path=f"/webhooks/piriod/{wrong}")
        refuse(b, standin, topic, "auth_missing", "piriod", PIRIOD_BODY)
        # the token in a header is not the token in the path
        refuse(b, standin, topic, "auth_missing", "piriod", PIRIOD_BODY,
               headers={"X-Token": PATH_OLD})
        # a provider without the path method has no such paths
        r = b.post("shoperti", SHOPERTI_BODY, path=f"/webhooks/shoperti/{PATH_OLD}")
        assert r.status_code == 404, r.text
        assert auth_failures(b, "piriod") == 7
        assert_nothing_leaked(b)


# ---- source network ----

def test_allow_cidrs_and_forwarded_for(standin):
    # the test client is 127.0.0.1
    env = {"BRIDGE_PROVIDER_PIRIOD_AUTH_ALLOW_CIDRS": "10.0.0.0/8, 192.168.1.0/24"}
    with Bridge(standin.bootstrap, env=env) as b:
        topic = "webhooks.piriod.payment.created"
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY)
        # 127.0.0.1 is not a trusted proxy: its X-Forwarded-For is ignored
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "10.1.2.3"})

    env["BRIDGE_PROVIDER_PIRIOD_AUTH_TRUSTED_PROXIES"] = "127.0.0.1"
    with Bridge(standin.bootstrap, env=env) as b:
        accept(b, standin, "piriod", PIRIOD_BODY, headers={"X-Forwarded-For": "10.1.2.3"})
        accept(b, standin, "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "192.168.1.7, 127.0.0.1"})
        # a client cannot put an allowed address in front of its own
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.5"})
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "not-an-address"})
        # the proxy itself is not an allowed source
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY)

    # the allow-list comes in addition to the method
    env.update({"BRIDGE_PROVIDER_PIRIOD_AUTH": "path",
                "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV": "PIRIOD_PATH_TOKENS",
                "PIRIOD_PATH_TOKENS": PATH_OLD})
    with Bridge(standin.bootstrap, env=env) as b:
        path = f"/webhooks/piriod/{PATH_OLD}"
        accept(b, standin, "piriod", PIRIOD_BODY, headers={"X-Forwarded-For": "10.1.2.3"},
               path=path)
        refuse(b, standin, topic, "auth_forbidden_network", "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "203.0.113.5"}, path=path)
        refuse(b, standin, topic, "auth_invalid", "piriod", PIRIOD_BODY,
               headers={"X-Forwarded-For": "10.1.2.3"}, path=f"/webhooks/piriod/{PATH_NEW}")


# ---- start-up ----

def test_real_brokers_need_a_method(standin):
    b = Bridge(standin.bootstrap, env={"BRIDGE_PROVIDER_PIRIOD_AUTH": None}, wait_ready=False)
    try:
        rc = b.proc.wait(30)
        out = b.stderr()
        with open(b.stdout_path) as f:
            out += f.read()
        assert rc != 0, out
        assert "piriod" in out and "BRIDGE_PROVIDER_PIRIOD_AUTH=none" in out, out
        b.check_sanitizers()
    finally:
        b.stop()
        b.tmp.cleanup()


@pytest.mark.parametrize("env, config", [
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": None}, "[provider.piriod]\nauth = none\n"),
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": "none"}, None),
], ids=["config-file", "environment"])
def test_explicit_none_starts_with_a_warning(standin, env, config):
    with Bridge(standin.bootstrap, env=env, config=config) as b:
        accept(b, standin, "piriod", PIRIOD_BODY)
        logs = b.stderr()
        with open(b.stdout_path) as f:
            logs += f.read()
        assert "piriod" in logs and "without authentication" in logs, logs


@pytest.mark.parametrize("env, needle", [
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": "basic"}, "unknown method"),
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": "hmac",
      "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV": "PIRIOD_UNSET_VAR"}, "auth.header"),
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": "hmac", "BRIDGE_PROVIDER_PIRIOD_AUTH_HEADER": "X-Sig",
      "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV": "PIRIOD_UNSET_VAR"}, "PIRIOD_UNSET_VAR"),
    ({"BRIDGE_PROVIDER_PIRIOD_AUTH": "hmac", "BRIDGE_PROVIDER_PIRIOD_AUTH_HEADER": "X-Sig",
      "BRIDGE_PROVIDER_PIRIOD_AUTH_SECRET": HMAC_OLD}, "auth.secret_env"),
], ids=["unknown-method", "hmac-without-header", "secret-env-unset", "literal-secret"])
def test_bad_configuration_stops_start_up(standin, env, needle):
    env = dict(env, PIRIOD_UNSET_VAR=None)
    b = Bridge(standin.bootstrap, env=env, wait_ready=False)
    try:
        rc = b.proc.wait(30)
        out = b.stderr()
        with open(b.stdout_path) as f:
            out += f.read()
        assert rc != 0, out
        assert needle in out, out
        assert HMAC_OLD not in out
    finally:
        b.stop()
        b.tmp.cleanup()
