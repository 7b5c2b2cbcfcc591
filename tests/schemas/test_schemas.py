"""Schemas, fixtures and records: Python jsonschema (draft-07) and ajv-cli agree.

Run: /usr/bin/python3 -m pytest -q tests/schemas
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import wbschema as w  # noqa: E402

ROOT = w.ROOT
SHARED = Path(os.environ.get("WB_SOURCE_DIR") or ROOT).resolve().parent / "shared"
REFERENCE_CE = SHARED / "reference" / "cloudevents-1.0.schema.json"
SEEDS = SHARED / "seeds"
AJV = ROOT / "tests" / "node_modules" / ".bin" / "ajv"
AJV_PLUGIN = "./tests/schemas/ajv-cloudevents-ref.js"

ALL_SCHEMAS = sorted(w.SCHEMAS_DIR.rglob("*.schema.json"))
OWN_SCHEMAS = [p for p in ALL_SCHEMAS if p != w.CLOUDEVENTS_SCHEMA_PATH]
BUNDLED_SCHEMA_PATH = w.SCHEMAS_DIR / "canonical-event.bundled.schema.json"
PROVIDER_FIXTURES = [(p, f) for p in w.PROVIDERS for f in w.FIXTURES[p]]
INVALID_FIXTURES = [(p, f) for p in w.PROVIDERS for f in w.INVALID_SHAPE_FIXTURES[p]]


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def ids(pairs):
    return [rel(f) for _, f in pairs]


# ------------------------------------------------------------------ schemas

@pytest.mark.parametrize("path", ALL_SCHEMAS, ids=rel)
def test_schema_is_valid_draft07(path):
    schema = w.load_json(path.read_bytes())
    Draft7Validator.check_schema(schema)
    if path != w.CLOUDEVENTS_SCHEMA_PATH:
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert schema["$id"] == w.SCHEMA_BASE_URI + path.relative_to(w.SCHEMAS_DIR).as_posix()
        assert schema.get("title") and schema.get("description")


def test_every_provider_has_a_schema_and_fixtures():
    for p in w.PROVIDERS:
        assert w.PROVIDER_SCHEMA_PATHS[p].is_file()
        assert len(w.FIXTURES[p]) >= 3, p
        assert w.FIXTURES[p][0].name == {"piriod": "payment-created.json",
                                         "shoperti": "order-created.json",
                                         "bonifiq": "point-add.json"}[p]
        assert len(w.INVALID_SHAPE_FIXTURES[p]) >= 3, p
    assert len(w.RECORD_FIXTURES) >= 4
    every_invalid = sorted((w.FIXTURES_DIR / "invalid-shape").glob("*.json"))
    assert every_invalid == sorted(f for _, f in INVALID_FIXTURES), "invalid-shape files must start with a provider"


@pytest.mark.skipif(not REFERENCE_CE.is_file(), reason=f"{REFERENCE_CE} absent (clean clone)")
def test_cloudevents_copy_is_exact():
    assert w.CLOUDEVENTS_SCHEMA_PATH.read_bytes() == REFERENCE_CE.read_bytes()


def test_canonical_is_a_refinement_of_cloudevents():
    canonical = w.load_json(w.CANONICAL_SCHEMA_PATH.read_bytes())
    assert "$ref" not in canonical and "allOf" in canonical
    assert canonical["allOf"][0] == {"$ref": "cloudevents/cloudevents-1.0.schema.json"}
    # The relative $ref resolves, from the $id, to the CloudEvents copy.
    v = w._validator(canonical, canonical["$id"])
    with v.resolver.resolving(canonical["allOf"][0]["$ref"]) as target:
        assert target == w.load_json(w.CLOUDEVENTS_SCHEMA_PATH.read_bytes())
    strict = canonical["allOf"][1]
    assert strict["additionalProperties"] is False
    assert set(strict["required"]) == {
        "specversion", "id", "source", "type", "time", "datacontenttype",
        "provider", "providerevent", "receivedat", "data"}
    assert set(strict["properties"]) == set(strict["required"]) | {"subject", "deadletterreason", "replayedfrom"}
    # Attribute names are valid CloudEvents names ([a-z0-9], at most 20 characters).
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", k) for k in strict["properties"])


@pytest.mark.parametrize("path", OWN_SCHEMAS, ids=rel)
def test_schema_examples_validate(path):
    schema = w.load_json(path.read_bytes())
    for example in schema.get("examples", []):
        if path in (w.CANONICAL_SCHEMA_PATH, BUNDLED_SCHEMA_PATH):
            w.validate_record(example)
        else:
            w.validate_provider(path.name.split(".")[0], example)


# ----------------------------------------------------------------- fixtures

@pytest.mark.parametrize("provider,path", PROVIDER_FIXTURES, ids=ids(PROVIDER_FIXTURES))
def test_provider_fixture_valid(provider, path):
    w.validate_provider(provider, w.load_fixture(path))
    w.validate_provider(provider, w.fixture_bytes(path))


@pytest.mark.parametrize("provider,path", INVALID_FIXTURES, ids=ids(INVALID_FIXTURES))
def test_invalid_shape_fixture_rejected(provider, path):
    body = w.load_fixture(path)  # valid JSON...
    with pytest.raises(w.ValidationError):
        w.validate_provider(provider, body)  # ...of the wrong shape


@pytest.mark.parametrize("provider", w.PROVIDERS)
def test_fixtures_cover_unicode_and_escapes(provider):
    raw = b"".join(w.fixture_bytes(f) for f in w.FIXTURES[provider])
    text = raw.decode("utf-8")
    assert re.search(r"[^\x00-\x7f]", text), "raw UTF-8 (accents, emoji)"
    assert re.search(r"[\U00010000-\U0010ffff]", text), "a raw 4-byte UTF-8 character"
    assert re.search(r"\\u00[0-9a-f]{2}", text), "a \\u escape"
    assert re.search(r"\\ud83[cd]\\ud[c-f][0-9a-f]{2}", text), "a surrogate-pair escape"
    assert '\\"' in text and "\\n" in text
    depth = max(_depth(w.load_fixture(f)) for f in w.FIXTURES[provider])
    assert depth >= 3, "nested objects"


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def test_invalid_shapes_cover_the_contract_cases():
    names = {f.name for _, f in INVALID_FIXTURES}
    for p, missing in (("piriod", "event"), ("shoperti", "topic"), ("bonifiq", "topicname")):
        assert f"{p}-missing-{missing}.json" in names
        assert f"{p}-top-level-array.json" in names
    assert {"piriod-event-number.json", "shoperti-topic-number.json",
            "bonifiq-topicname-number.json"} <= names


def _seed_json(marker: str):
    for f in sorted(SEEDS.glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        i = text.find(marker)
        if i >= 0:
            return json.JSONDecoder().raw_decode(text, i)[0]
    raise AssertionError(f"{marker!r} not found in {SEEDS}")


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"{SEEDS} absent (clean clone)")
def test_bonifiq_fixture_is_the_documented_example():
    assert w.load_fixture("bonifiq/point-add.json") == _seed_json('{\n"Uuid"')


# ------------------------------------------------------------------ records

@pytest.mark.parametrize("path", w.RECORD_FIXTURES, ids=rel)
def test_record_fixture_valid(path):
    record = w.validate_record(w.fixture_bytes(path))
    w.validate_cloudevent(record)


# record fixture -> the body it was made from (None: a non-object body, see data)
RECORD_SOURCES = {
    "piriod-payment-created.json": "piriod/payment-created.json",
    "piriod-invoice-paid-unicode.json": "piriod/invoice-paid-unicode.json",
    "piriod-deadletter-missing-event.json": "invalid-shape/piriod-missing-event.json",
    "shoperti-order-created.json": "shoperti/order-created.json",
    "shoperti-customer-created-offset.json": "shoperti/customer-created-type-fallback.json",
    "bonifiq-point-add.json": "bonifiq/point-add.json",
    "bonifiq-deadletter-top-level-array.json": "invalid-shape/bonifiq-top-level-array.json",
}
EVENT_FIELD = {"piriod": ("event",), "shoperti": ("topic", "type", "event"), "bonifiq": ("TopicName",)}
ID_FIELD = {"shoperti": "id", "bonifiq": "Uuid"}


@pytest.mark.parametrize("path", w.RECORD_FIXTURES, ids=rel)
def test_record_fixture_matches_its_body(path):
    record = w.load_fixture(path)
    body = w.load_fixture(RECORD_SOURCES[path.name])
    provider = record["provider"]
    assert path.name.startswith(provider + "-")
    assert record["source"] == {"piriod": "https://api.piriod.com",
                                "shoperti": "https://api.shoperti.com",
                                "bonifiq": "https://api.bonifiq.com.br"}[provider]
    if isinstance(body, dict):
        assert record["data"] == body
    else:  # non-object bodies are carried as their JSON text
        assert isinstance(record["data"], str) and w.load_json(record["data"]) == body
    if w.is_deadletter(record):
        assert record["deadletterreason"]
        return
    event = next(body[k] for k in EVENT_FIELD[provider] if k in body)
    assert record["providerevent"] == event
    assert record["type"] == w.expected_type(provider, event)
    if provider in ID_FIELD:
        assert record["id"] == body[ID_FIELD[provider]]
    if provider == "bonifiq":
        assert record["time"] == body["Timestamp"] + "Z"
    if provider == "piriod":
        assert record["subject"] == body["object_id"]
    if provider == "shoperti":
        assert record["subject"] == str(body["data"]["id"])


def test_normalize_event():
    assert w.normalize_event("Point_Add") == "point.add"
    assert w.normalize_event("orders/created") == "orders.created"
    assert w.normalize_event("payment.created") == "payment.created"
    assert w.normalize_event("__Weird--Name__v2//") == "weird.name.v2"
    assert w.normalize_event("Comunicações") == "comunica.es"
    assert w.normalize_event("İK") == "k"  # ASCII-only lower casing, as C's tolower
    assert w.normalize_event("😀") == ""


GOOD = "records/piriod-payment-created.json"
DEAD = "records/piriod-deadletter-missing-event.json"


def _set(path, key, value):
    def f(r):
        r[key] = value
    return path, f


def _del(path, key):
    def f(r):
        del r[key]
    return path, f


# (name, (fixture, mutation), rejected by the JSON Schema itself, not only by wbschema's code)
NEGATIVE = [
    ("missing-id", _del(GOOD, "id"), True),
    ("empty-id", _set(GOOD, "id", ""), True),
    ("missing-specversion", _del(GOOD, "specversion"), True),
    ("specversion-0.3", _set(GOOD, "specversion", "0.3"), True),
    ("specversion-number", _set(GOOD, "specversion", 1.0), True),
    ("missing-source", _del(GOOD, "source"), True),
    ("empty-source", _set(GOOD, "source", ""), True),
    ("missing-time", _del(GOOD, "time"), True),
    ("missing-data", _del(GOOD, "data"), True),
    ("missing-providerevent", _del(GOOD, "providerevent"), True),
    ("missing-receivedat", _del(GOOD, "receivedat"), True),
    ("type-upper-case", _set(GOOD, "type", "piriod.Payment.created"), True),
    ("type-one-segment", _set(GOOD, "type", "piriod"), True),
    ("type-empty-segment", _set(GOOD, "type", "piriod..created"), True),
    ("type-underscore", _set(GOOD, "type", "piriod.payment_created"), True),
    ("type-prefix-not-provider", _set(GOOD, "type", "shoperti.payment.created"), True),
    ("type-prefix-longer-than-provider", _set(GOOD, "type", "piriodx.payment.created"), True),
    ("type-trailing-newline", _set(GOOD, "type", "piriod.payment.created\n"), False),
    ("type-not-derived-from-providerevent", _set(GOOD, "type", "piriod.payment.updated"), False),
    ("provider-upper-case", _set(GOOD, "provider", "Piriod"), True),
    ("time-without-zone", _set(GOOD, "time", "2024-03-01T13:16:11.396371"), True),
    ("time-space-separator", _set(GOOD, "time", "2024-03-01 13:16:11Z"), True),
    ("time-lower-case-z", _set(GOOD, "time", "2024-03-01T13:16:11z"), True),
    ("time-date-only", _set(GOOD, "time", "2024-03-01"), True),
    ("time-month-13", _set(GOOD, "time", "2024-13-01T00:00:00Z"), True),
    ("time-february-30", _set(GOOD, "time", "2024-02-30T00:00:00Z"), False),
    ("receivedat-no-millis", _set(GOOD, "receivedat", "2024-03-01T13:16:12Z"), True),
    ("receivedat-micros", _set(GOOD, "receivedat", "2024-03-01T13:16:12.042000Z"), True),
    ("receivedat-offset", _set(GOOD, "receivedat", "2024-03-01T10:16:12.042-03:00"), True),
    ("datacontenttype-other", _set(GOOD, "datacontenttype", "text/plain"), True),
    ("subject-empty", _set(GOOD, "subject", ""), True),
    ("subject-number", _set(GOOD, "subject", 42), True),
    ("extra-unknown-attribute", _set(GOOD, "tenant", "acme"), True),
    ("extra-dataschema", _set(GOOD, "dataschema", "https://example.com/s.json"), True),
    ("extra-data-base64", _set(GOOD, "data_base64", "e30="), True),
    ("data-array", _set(GOOD, "data", [1, 2]), True),
    ("data-number", _set(GOOD, "data", 5), True),
    ("data-null", _set(GOOD, "data", None), True),
    ("providerevent-empty-outside-deadletter", _set(GOOD, "providerevent", ""), True),
    ("deadletterreason-outside-deadletter", _set(GOOD, "deadletterreason", "why"), True),
    ("deadletter-without-reason", _del(DEAD, "deadletterreason"), True),
    ("deadletter-empty-reason", _set(DEAD, "deadletterreason", ""), True),
    ("deadletter-other-provider", _set(DEAD, "type", "bonifiq.deadletter"), True),
]


def _mutated(case):
    path, mutate = case
    record = copy.deepcopy(w.load_fixture(path))
    mutate(record)
    return record


@pytest.mark.parametrize("name,case,by_schema", NEGATIVE, ids=[n for n, _, _ in NEGATIVE])
def test_bad_record_rejected(name, case, by_schema):
    record = _mutated(case)
    with pytest.raises(w.ValidationError):
        w.validate_record(record)
    canonical = w.load_json(w.CANONICAL_SCHEMA_PATH.read_bytes())
    schema_says = w._validator(canonical, canonical["$id"]).is_valid(record)
    assert schema_says is (not by_schema)


def test_cloudevents_schema_alone_is_enforced():
    record = w.load_fixture(GOOD)
    w.validate_cloudevent(record)
    for key in ("id", "source", "type", "specversion"):
        r = dict(record)
        del r[key]
        with pytest.raises(w.ValidationError):
            w.validate_cloudevent(r)
    # CloudEvents itself allows extensions the canonical schema forbids.
    w.validate_cloudevent(dict(record, tenant="acme"))


def test_record_variants_accepted():
    base = w.load_fixture(GOOD)
    no_subject = {k: v for k, v in base.items() if k != "subject"}
    w.validate_record(no_subject)
    w.validate_record(dict(base, time="2024-03-01T10:16:12-03:00"))
    w.validate_record(dict(base, time="2024-03-01T13:16:12.1234567Z"))
    w.validate_record(dict(base, id="evt_ffee0011/2", source="urn:piriod:workspace:42"))
    # another configured provider: schema cannot tie type to it, wbschema does
    other = dict(base, provider="acme2", type="acme2.invoice.paid", providerevent="Invoice-Paid")
    w.validate_record(other)
    with pytest.raises(w.ValidationError):
        w.validate_record(dict(other, type="acme.invoice.paid"))
    # a dead letter keeps whatever event name it found
    dead = w.load_fixture(DEAD)
    w.validate_record(dict(dead, providerevent="42"))
    w.validate_record(dict(dead, data="\"payment.created\""))
    # raw Kafka value, str or bytes
    raw = w.fixture_bytes("records/piriod-invoice-paid-unicode.json")
    w.validate_record(raw)
    w.validate_record(raw.decode("utf-8"))


def test_raw_record_must_be_strict_json():
    with pytest.raises(ValueError):
        w.validate_record(b'{"id": "a", "id": "b"}')
    with pytest.raises(ValueError):
        w.validate_record(b'{"x": NaN}')
    with pytest.raises(ValueError):
        w.validate_record(b'{"x": "\xff"}')


# -------------------------------------------------------------------- ajv-cli

needs_ajv = pytest.mark.skipif(
    not AJV.exists(),
    reason="tests/node_modules absent: run `cd tests && npm install` (ajv-cli 5, ajv 8, ajv-formats 3)")


def ajv(command: str, schema: Path, *data: Path, plugin: bool = True):
    """ajv-cli on schema and data; plugin=False: without ajv-cloudevents-ref.js."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    args = [str(AJV), command, "--spec=draft7", "--strict=true", "--strict-required=false",
            "--allow-union-types", "-c", "ajv-formats", *(["-c", AJV_PLUGIN] if plugin else []),
            "-s", str(schema)]
    for d in data:
        args += ["-d", str(d)]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


@needs_ajv
@pytest.mark.parametrize("path", ALL_SCHEMAS, ids=rel)
def test_ajv_compiles_schema(path):
    r = ajv("compile", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "strict mode" not in r.stdout + r.stderr


@needs_ajv
def test_ajv_accepts_records():
    for schema in (w.CANONICAL_SCHEMA_PATH, w.CLOUDEVENTS_SCHEMA_PATH):
        r = ajv("validate", schema, *w.RECORD_FIXTURES)
        assert r.returncode == 0, r.stdout + r.stderr
        for f in w.RECORD_FIXTURES:
            assert f"{f} valid" in r.stdout


@needs_ajv
def test_ajv_accepts_provider_fixtures():
    for p in w.PROVIDERS:
        r = ajv("validate", w.PROVIDER_SCHEMA_PATHS[p], *w.FIXTURES[p])
        assert r.returncode == 0, r.stdout + r.stderr


@needs_ajv
@pytest.mark.parametrize("provider,path", INVALID_FIXTURES, ids=ids(INVALID_FIXTURES))
def test_ajv_rejects_invalid_shape(provider, path):
    r = ajv("validate", w.PROVIDER_SCHEMA_PATHS[provider], path)
    assert r.returncode == 1 and f"{path} invalid" in r.stderr, r.stdout + r.stderr


SCHEMA_NEGATIVE = [(n, c) for n, c, by_schema in NEGATIVE if by_schema]


@needs_ajv
@pytest.mark.parametrize("name,case", SCHEMA_NEGATIVE, ids=[n for n, _ in SCHEMA_NEGATIVE])
def test_ajv_rejects_bad_record(name, case, tmp_path):
    bad = tmp_path / f"{name}.json"
    bad.write_text(json.dumps(_mutated(case), ensure_ascii=False), encoding="utf-8")
    r = ajv("validate", w.CANONICAL_SCHEMA_PATH, bad)
    assert r.returncode == 1 and f"{bad} invalid" in r.stderr, r.stdout + r.stderr


# ------------------------------------------------------- the bundled schema
# schemas/canonical-event.bundled.schema.json: the canonical schema with the
# CloudEvents schema inlined, for tools used plainly, offline.

@pytest.fixture
def offline(monkeypatch):
    """Any attempt of jsonschema to fetch a $ref fails the test."""
    import urllib.request

    def refuse(*args, **kw):
        raise AssertionError(f"tried to fetch {args[0]!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import jsonschema.validators
    if hasattr(jsonschema.validators, "urlopen"):
        monkeypatch.setattr(jsonschema.validators, "urlopen", refuse)
    try:
        import requests
        monkeypatch.setattr(requests, "get", refuse)
    except ImportError:
        pass


def _bundled():
    return json.loads(BUNDLED_SCHEMA_PATH.read_text(encoding="utf-8"))


def test_bundle_is_current():
    r = subprocess.run([sys.executable, str(w.SCHEMAS_DIR / "make-bundle.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bundle_is_self_contained():
    text = BUNDLED_SCHEMA_PATH.read_text(encoding="utf-8")
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', text)
    assert refs and all(r.startswith("#/definitions/") for r in refs), refs
    schema = _bundled()
    for r in refs:  # each points at a definition of this file
        assert r[len("#/definitions/"):].split("/")[0] in schema["definitions"], r


def test_plain_jsonschema_needs_the_bundle(offline):
    """What a newcomer does first: jsonschema.validate(record, schema). On the
    source schema it tries to fetch the CloudEvents schema; on the bundle it
    works."""
    import jsonschema

    record = w.load_fixture(GOOD)
    with pytest.raises(Exception, match="tried to fetch|Unresolvable|RefResolution"):
        jsonschema.validate(record, w.load_json(w.CANONICAL_SCHEMA_PATH.read_bytes()))
    jsonschema.validate(record, _bundled())


def test_plain_jsonschema_accepts_records(offline):
    import jsonschema

    for path in w.RECORD_FIXTURES:
        jsonschema.validate(w.load_fixture(path), _bundled(),
                            format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("name,case,by_schema", NEGATIVE, ids=[n for n, _, _ in NEGATIVE])
def test_plain_jsonschema_judges_as_the_source(name, case, by_schema, offline):
    """The bundle accepts and rejects exactly what the source schema does."""
    import jsonschema

    record = _mutated(case)
    if by_schema:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(record, _bundled(), format_checker=jsonschema.FormatChecker())
    else:
        jsonschema.validate(record, _bundled(), format_checker=jsonschema.FormatChecker())


@needs_ajv
def test_ajv_plain_on_the_bundle(tmp_path):
    """ajv-cli with no plugin: compiles the bundle, accepts every record
    fixture, rejects every record the source schema rejects."""
    r = ajv("compile", BUNDLED_SCHEMA_PATH, plugin=False)
    assert r.returncode == 0 and "strict mode" not in r.stdout + r.stderr, r.stdout + r.stderr
    r = ajv("validate", BUNDLED_SCHEMA_PATH, *w.RECORD_FIXTURES, plugin=False)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = []
    for name, case in SCHEMA_NEGATIVE:
        bad.append(tmp_path / f"{name}.json")
        bad[-1].write_text(json.dumps(_mutated(case), ensure_ascii=False), encoding="utf-8")
    r = ajv("validate", BUNDLED_SCHEMA_PATH, *bad, plugin=False)
    assert r.returncode == 1, r.stdout + r.stderr
    for f in bad:
        assert f"{f} invalid" in r.stderr, f.name
