"""seeds.py - writes the seed corpora of the fuzz targets other than json
(tests/fuzz/corpus/<target>/) from tests/fixtures, and the inputs of past
findings (tests/fuzz/regressions/<target>/), in each target's input
layout (see the comment at the top of fuzz_<target>.c). Run it again after
changing a layout: python3 tests/fuzz/seeds.py"""
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
FIX = HERE.parent / "fixtures"


def fixture(rel):
    return (FIX / rel).read_bytes()


def write(target, name, data, where="corpus"):
    d = HERE / where / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def fields(*parts):
    return b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)


# ---- auth: [method][flags][pos][mask] secret prefix allow proxies tolerance
#            peer path id headers body
F_BASE64, F_PREFIX, F_ALLOW, F_PROXIES, F_PEER, F_GEN, F_TOL, F_EXTRA = (1 << i for i in range(8))
NONE, HEADER, HMAC, STANDARD, PATH = range(5)


def auth(name, method, flags, secret, body, prefix="", allow="", proxies="", tol="", peer="",
         path="", msgid="", headers=""):
    head = bytes([method, flags, 7, 0x20])
    write("auth", name, head + fields(secret, prefix, allow, proxies, tol, peer, path, msgid,
                                      headers, body))


piriod = fixture("piriod/payment-created.json")
shoperti = fixture("shoperti/order-created.json")
bonifiq = fixture("bonifiq/point-add.json")
auth("none", NONE, 0, "", piriod)
auth("header", HEADER, F_GEN, "s3cr3t-token-value", bonifiq,
     headers="X-Token: s3cr3t-token-value")
auth("header-two", HEADER, F_GEN | F_EXTRA, "old-token,new-token", bonifiq,
     headers="X-Token: new-token\nX-Token-2: old-token")
auth("header-raw", HEADER, 0, "old-token, new-token\tthird", bonifiq,
     headers="X-Token:  old-token \nx-token: new-token")
auth("hmac-hex", HMAC, F_GEN | F_PREFIX, "hmac-secret-one", shoperti, prefix="sha256=",
     headers="X-Signature: sha256=b1c294b33a8b933a7f61c2a514eb9bf93f02f5021ba0bab6cec4873d19f7bd03")
auth("hmac-b64", HMAC, F_GEN | F_BASE64, "hmac-secret-one", shoperti,
     headers="X-Signature: scKUszqLkzp/YcKlFOub+T8C9QIboLq2zsSHPRn3vQM=")
auth("hmac-raw", HMAC, F_BASE64, "k1,k2", shoperti, headers="X-Signature: scKUszqLkzp/YcKl==")
auth("standard", STANDARD, F_GEN | F_TOL, "bridge-test-key-number-1", shoperti, tol="300",
     msgid="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
     headers="webhook-id: msg_2KWPBgLlAfxdpx2AI54pPJ85f4W\nwebhook-timestamp: 1700000000\n"
     "webhook-signature: v1,PpO7azZrq8tsmXZGQZpO+CGjAv0G+GvyFtHHCBybJ1s= v2,x")
auth("standard-raw", STANDARD, F_EXTRA, "whsec_YnJpZGdlLXRlc3Qta2V5LXBhZGRlZC0yNQ==", b"",
     headers="webhook-id: m\nwebhook-timestamp: 1699999701\nwebhook-signature: v1,AA== v1,QQ")
auth("path", PATH, F_GEN, "k3Jd9-QzL2mX_8pVt4wR", piriod, path="k3Jd9-QzL2mX_8pVt4wR")
auth("path-raw", PATH, 0, "k3Jd9-QzL2mX_8pVt4wR Zr71_newer-token.abcdEF", piriod,
     path="Zr71_newer-token.abcdEF")
auth("cidr-xff", HEADER, F_GEN | F_ALLOW | F_PROXIES | F_PEER, "tok-abcdefgh", bonifiq,
     allow="203.0.113.0/24, 2001:db8::/32 ::ffff:192.0.2.0/120", proxies="10.0.0.0/8 fd00::/8",
     peer="10.1.2.3", headers="X-Forwarded-For: 198.51.100.7, 203.0.113.9:443\n"
     "X-Forwarded-For: [2001:db8::1]:8443, 10.0.0.2\nX-Token: tok-abcdefgh")
auth("cidr-v6", PATH, F_GEN | F_ALLOW | F_PEER, "k3Jd9-QzL2mX_8pVt4wR", piriod,
     allow="2001:db8::/32,10.0.0.1", peer="::ffff:10.0.0.1")


# ---- provider: [provider][flags][receive time, 4 bytes] type id subject time required
#                time_format key source routes topic_prefix body
PIRIOD, SHOPERTI, BONIFIQ, ACME = range(4)
F_SETTINGS, F_KEY_ID = 1, 2
T0 = (1700000000).to_bytes(4, "big")


def provider(name, which, body, flags=0, settings=("",) * 8, routes="", prefix="",
             where="corpus"):
    head = bytes([which, flags]) + T0
    write("provider", name, head + fields(*settings, routes, prefix, body), where)


for sub in ("piriod", "shoperti", "bonifiq"):
    for f in sorted((FIX / sub).iterdir()):
        provider(f"{sub}-{f.stem}", ["piriod", "shoperti", "bonifiq"].index(sub), f.read_bytes())
for f in sorted((FIX / "invalid-shape").iterdir())[::2]:
    which = ["piriod", "shoperti", "bonifiq"].index(f.stem.split("-")[0])
    provider(f"invalid-{f.stem}", which, f.read_bytes())
provider("acme-unix", ACME, b'{"kind":"Order.Paid","uid":"u-1","who":{"id":7},"at":1700000000.5}',
         settings=("/kind,/type", "/uid", "/who/id", "/at", "id,subject,time", "unix", "id",
                   "https://acme.example/\"hooks\""),
         routes="acme.order.*=orders\n*=all", prefix="prod")
provider("acme-unix-ms", ACME, b'{"type":"a~b","id":12,"ts":1700000000123,"s":"x\\u00e9"}',
         settings=("/type", "/id", "/s", "/ts", "time", "unix-ms", "subject", ""))
provider("acme-rfc3339", ACME, b'{"e":{"n/m":"x"},"t":"2024-02-29T23:59:60.123+05:30"}',
         settings=("/e/n~1m", "", "", "/t", "type", "rfc3339", "", "urn:x"))
provider("acme-naive", ACME, b'{"a":["ev"],"t":"2024-01-01 00:00:00"}',
         settings=("/a/0", "", "", "/t", "", "naive-utc", "", ""), flags=F_KEY_ID)
provider("bonifiq-override", BONIFIQ, fixture("bonifiq/point-add.json"), flags=F_SETTINGS,
         settings=("/Topic", "", "", "", "", "auto", "", ""))
provider("acme-not-object", ACME, b'["not", "an", "object"]')


# ---- route: [output size / 2] provider topic_prefix routes event
def route(name, event, provider="piriod", prefix="", routes="", size=120):
    write("route", name, bytes([size]) + fields(provider, prefix, routes, event))


route("piriod", b"payment.created")
route("shoperti", b"orders/created", provider="shoperti", routes="shoperti.orders.*=orders")
route("bonifiq", b"Point_Add", provider="bonifiq", prefix="prod",
      routes="bonifiq.point.*=loyalty\nbonifiq.[!p]*=other\n*=all")
route("separators", b"__a..b--//C__", routes="*.a.?=x\n[=bad")
route("unicode", "pay\u00e9\u2028x".encode(), routes="\\*=esc")
route("long", b"x" * 300, size=255)
route("small", b"ab.cd", size=5)
route("empty", b"...", size=20)
route("nul", b"a\0b", routes="piriod.a.b=nul")


# ---- config: [flags] ini environment secret-file
F_NO_FILE = 1
SECRET_FILE = "/proc/self/fd/901"


def config(name, ini, env="", secret=b"", flags=0):
    write("config", name, bytes([flags]) + fields(ini, env, secret))


ROOT = HERE.parent.parent
config("example", (ROOT / "deploy" / "bridge.example.ini").read_bytes())
config("k8s", (ROOT / "deploy" / "k8s" / "bridge.ini").read_bytes(),
       env="BRIDGE_KAFKA_BROKERS=k1:9092\nWBFZ_PIRIOD=k3Jd9-QzL2mX_8pVt4wR\n"
       "BRIDGE_PROVIDER_PIRIOD_AUTH=path\nBRIDGE_PROVIDER_PIRIOD_AUTH_SECRET_ENV=WBFZ_PIRIOD")
config("every-section", "[server]\nlisten = 127.0.0.1:18080\nadmin_listen = [::1]:19090\n"
       "threads = 4\nlog_level = DEBUG\nmax_json_depth = 32\n[kafka]\nbrokers = k1:9092\n"
       "topic_prefix = prod.hooks\ndeadletter_topic = prod_dlq-1\n[librdkafka]\nlinger.ms = 5\n"
       "acks = all\nenable.idempotence = true\n[routes]\npiriod.payment.* = payments\n* = all\n"
       "[provider.piriod]\nkey = id\nauth = none\n[provider.shoperti]\nauth = none\n"
       "enabled = false\n[provider.bonifiq]\nauth = none\ndeadletter_status = 400\n"
       "failure_statuses = 503, 502\n[provider.acme]\nsource = https://acme.example\n"
       "type = /meta/kind, /kind\nid = /meta/id\ntime_format = unix-ms\nrequired = id, time\n"
       "auth = none\nunknown_topic = acme-all\n[spool]\ndir = /nonexistent\n")
config("auth-methods", "[provider.shoperti]\nauth = hmac\nauth.header = X-Signature\n"
       "auth.prefix = sha256=\nauth.encoding = base64\nauth.secret_env = WBFZ_HMAC\n"
       "[provider.bonifiq]\nauth = header\nauth.header = X-Token\nauth.secret_file = "
       + SECRET_FILE + "\nauth.header_2 = X-Two\nauth.secret_env_2 = WBFZ_HMAC\n"
       "auth.allow_cidrs = 10.0.0.0/8, ::1\nauth.trusted_proxies = 10.1.0.0/16\n"
       "[provider.acme]\nauth = standard-webhooks\nauth.secret_env = WBFZ_WHSEC\n"
       "auth.tolerance_s = 60\n",
       env="WBFZ_HMAC=one,two three\nWBFZ_WHSEC=whsec_YnJpZGdlLXRlc3Qta2V5LW51bWJlci0x",
       secret=b"  token-one \n\ntoken-two\n")
config("errors", "[server]\nthreads = 0\nnot a line\n[kafka\nlisten = x\n[librdkafka]\n"
       "acks = 1\nno.such.property = 1\n[provider.Bad]\n[provider.piriod]\nauth = hmac\n"
       "auth.secret = literal\ntype =\n  continued\n" + "x" * 300 + "\n")
config("env-only", "", flags=F_NO_FILE,
       env="BRIDGE_THREADS=8\nBRIDGE_LISTEN=:1\nBRIDGE_RDKAFKA_LINGER_MS=5\n"
       "BRIDGE_PROVIDER_SHOPERTI_AUTH=standard-webhooks\n"
       "BRIDGE_PROVIDER_SHOPERTI_AUTH_SECRET_FILE=" + SECRET_FILE + "\nBRIDGE_SERVICE_HOST=x",
       secret=b"whsec_YnJpZGdlLXRlc3Qta2V5LXBhZGRlZC0yNQ==\n")
# a source that is 12.6 KB once escaped (event.c's record cap; test_event.c);
# a regression input, not a seed: every execution would build 12 KB records
provider("long-source", PIRIOD, fixture("piriod/payment-created.json"), flags=F_SETTINGS,
         settings=("", "", "", "", "", "", "", "\x01" * 2100), where="regressions")

# ---- lookup: [output size / 16] template match id
def lookup(name, outsz16, template, match, id_):
    write("lookup", name, bytes([outsz16]) + fields(template, match, id_))


lookup("shoperti", 16, "https://api.shoperti.com/v1/events/{id}", "/topic", "evt_1001")
lookup("escapes", 4, "http://127.0.0.1:18555/v1/events/{id}?again={id}", "/id=/data/id, /topic",
       "evt/1?x=%41 é😀")
lookup("small", 0, "{id}", "", "a b")
lookup("v6", 255, "http://[::1]:9/e/{id}", "/a/b", b"\0\xff")
lookup("not-loopback", 20, "http://192.0.2.1/e/{id}", "topic", "x")
config("api-lookup", "[provider.shoperti]\nauth = api-lookup\n"
       "auth.url = http://127.0.0.1:9/v1/events/{id}?x={id}\nauth.match = /topic, /id=/data/id\n"
       "auth.scheme = Bearer\nauth.secret_env = WBFZ_HMAC\nauth.cache_s = 0\n"
       "auth.timeout_ms = 900\nauth.max_concurrent = 2\n",
       env="WBFZ_HMAC=token")
