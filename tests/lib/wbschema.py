"""wbschema - validate webhook-bridge records and provider bodies in tests.

Import it from any test with

    sys.path.insert(0, os.path.join(os.environ["WB_SOURCE_DIR"], "tests", "lib"))
    import wbschema

and use:

    wbschema.validate_record(record)        # a Kafka record value: dict, str or bytes
    wbschema.validate_provider("bonifiq", body)  # parsed value or raw bytes
    body = wbschema.load_fixture(wbschema.FIXTURES["piriod"][0])
    raw = wbschema.fixture_bytes(path)      # the exact bytes, to POST unchanged

validate_record checks the record against schemas/canonical-event.schema.json AND,
separately, against the CloudEvents 1.0 JSON schema, then checks in code what
draft-07 cannot say (type = "<provider>." + normalised providerevent, real calendar
dates). Every failure raises jsonschema.ValidationError (re-exported here).

Works with Debian 12's python3-jsonschema 4.10 (RefResolver; no `referencing`).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Iterable

from jsonschema import Draft7Validator, FormatChecker, RefResolver
from jsonschema.exceptions import ValidationError

__all__ = [
    "ROOT", "SCHEMAS_DIR", "FIXTURES_DIR", "SCHEMA_BASE_URI",
    "CANONICAL_SCHEMA_PATH", "CLOUDEVENTS_SCHEMA_PATH", "PROVIDER_SCHEMA_PATHS",
    "PROVIDERS", "FIXTURES", "INVALID_SHAPE_FIXTURES", "RECORD_FIXTURES",
    "ValidationError", "load_json", "load_fixture", "fixture_bytes",
    "normalize_event", "expected_type", "is_deadletter",
    "validate_record", "validate_cloudevent", "validate_provider", "schema_store",
]

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = ROOT / "schemas"
FIXTURES_DIR = ROOT / "tests" / "fixtures"

# The $id of canonical-event.schema.json is SCHEMA_BASE_URI + that file name; the
# CloudEvents schema (an exact copy of the published file, so without $id) is
# registered under the URI its relative $ref resolves to.
SCHEMA_BASE_URI = "https://webhook-bridge.example/schemas/"
CANONICAL_SCHEMA_PATH = SCHEMAS_DIR / "canonical-event.schema.json"
CLOUDEVENTS_SCHEMA_PATH = SCHEMAS_DIR / "cloudevents" / "cloudevents-1.0.schema.json"
CLOUDEVENTS_URI = SCHEMA_BASE_URI + "cloudevents/cloudevents-1.0.schema.json"

PROVIDERS = ("piriod", "shoperti", "bonifiq")
PROVIDER_SCHEMA_PATHS = {p: SCHEMAS_DIR / "providers" / f"{p}.schema.json" for p in PROVIDERS}

# Example bodies per provider: tests/fixtures/<provider>/*.json, sorted; the first
# of each list is the provider's own documented example where it has one.
_FIRST = {"piriod": "payment-created.json", "shoperti": "order-created.json",
          "bonifiq": "point-add.json"}


def _listing(d: Path, first: str | None = None) -> list[Path]:
    files = sorted(d.glob("*.json"))
    files.sort(key=lambda p: p.name != first)  # stable: `first` moves to the front
    return files


FIXTURES: dict[str, list[Path]] = {
    p: _listing(FIXTURES_DIR / p, _FIRST[p]) for p in PROVIDERS
}
# Valid JSON of the wrong shape, keyed by provider (file names start with it).
INVALID_SHAPE_FIXTURES: dict[str, list[Path]] = {
    p: sorted((FIXTURES_DIR / "invalid-shape").glob(f"{p}-*.json")) for p in PROVIDERS
}
# Hand-written canonical records, as the bridge would produce them.
RECORD_FIXTURES: list[Path] = sorted((FIXTURES_DIR / "records").glob("*.json"))


# --------------------------------------------------------------------- loading

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate object key {k!r}")
        d[k] = v
    return d


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str | bytes) -> Any:
    """Parses JSON strictly: UTF-8 only, no NaN/Infinity, no duplicate keys."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")  # strict: invalid UTF-8 raises
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = FIXTURES_DIR / p  # "piriod/payment-created.json" works too
    return p


def fixture_bytes(path: str | Path) -> bytes:
    """The fixture's exact bytes (escapes and all), for sending as a webhook body."""
    return _resolve(path).read_bytes()


def load_fixture(path: str | Path) -> Any:
    """Parses a fixture (absolute, repo-relative, or relative to tests/fixtures)."""
    return load_json(fixture_bytes(path))


# ---------------------------------------------------------------- validators

_cache: dict[str, Any] = {}


def _schema(path: Path) -> dict:
    key = str(path)
    if key not in _cache:
        _cache[key] = load_json(path.read_bytes())
    return _cache[key]


def schema_store() -> dict[str, dict]:
    """URI -> schema for every schema of the repository (for RefResolver)."""
    store = {CLOUDEVENTS_URI: _schema(CLOUDEVENTS_SCHEMA_PATH)}
    for path in [CANONICAL_SCHEMA_PATH, *PROVIDER_SCHEMA_PATHS.values()]:
        s = _schema(path)
        store[s["$id"]] = s
    return store


def _validator(schema: dict, base_uri: str) -> Draft7Validator:
    resolver = RefResolver(base_uri=base_uri, referrer=schema, store=schema_store())
    return Draft7Validator(schema, resolver=resolver, format_checker=FormatChecker())


def _raise_first(validator: Draft7Validator, instance: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "/".join(str(x) for x in e.absolute_path) or "(root)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValidationError(f"{what}: at {where}: {e.message}{more}") from e


def _as_instance(x: Any, text_is_json: bool) -> Any:
    if isinstance(x, (bytes, bytearray, memoryview)) or (text_is_json and isinstance(x, str)):
        return load_json(x)
    return x


# ------------------------------------------------------------ record checks

_TYPE_RE = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)+")
_TIME_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
_RECEIVED_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def normalize_event(name: str) -> str:
    """The contract's event normalisation: ASCII lower case, every run of
    characters outside [a-z0-9] becomes one '.', no leading/trailing '.'.
    'Point_Add' -> 'point.add', 'orders/created' -> 'orders.created'."""
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in name)
    return re.sub(r"[^a-z0-9]+", ".", lowered).strip(".")


def expected_type(provider: str, event: str) -> str:
    return f"{provider}.{normalize_event(event)}"


def is_deadletter(record: dict) -> bool:
    return isinstance(record.get("type"), str) and record["type"].endswith(".deadletter")


def _check_calendar(value: str, name: str) -> None:
    m = _TIME_RE.fullmatch(value)
    if not m:
        raise ValidationError(f"{name}: {value!r} is not an RFC 3339 date-time with a zone")
    try:
        _dt.date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError as e:
        raise ValidationError(f"{name}: {value!r}: {e}") from None


def _semantic_checks(r: dict, check_type_derivation: bool) -> None:
    provider, typ = r["provider"], r["type"]
    # Python's re.search lets '$' match before a final '\n'; fullmatch does not.
    if not _TYPE_RE.fullmatch(typ):
        raise ValidationError(f"type: {typ!r} does not match [a-z0-9]+(.[a-z0-9]+)+")
    if typ.split(".", 1)[0] != provider:
        raise ValidationError(f"type: {typ!r} does not start with provider {provider!r}")
    if not re.fullmatch(r"[a-z0-9]+", provider):
        raise ValidationError(f"provider: {provider!r} is not [a-z0-9]+")
    if not _RECEIVED_RE.fullmatch(r["receivedat"]):
        raise ValidationError(f"receivedat: {r['receivedat']!r} is not UTC with milliseconds")
    _check_calendar(r["time"], "time")
    _check_calendar(r["receivedat"], "receivedat")
    if check_type_derivation and not is_deadletter(r):
        want = expected_type(provider, r["providerevent"])
        if typ != want:
            raise ValidationError(
                f"type: {typ!r} is not {want!r}, derived from providerevent {r['providerevent']!r}")


def validate_cloudevent(record: Any) -> None:
    """Validates against the CloudEvents 1.0 JSON schema alone."""
    record = _as_instance(record, True)
    _raise_first(_validator(_schema(CLOUDEVENTS_SCHEMA_PATH), CLOUDEVENTS_URI), record,
                 "not a CloudEvents 1.0 event")


def validate_record(record: Any, *, check_type_derivation: bool = True) -> dict:
    """Validates one canonical record (a dict, or the raw Kafka value as bytes or str).

    Raises ValidationError unless the record is valid against the canonical schema,
    valid against the CloudEvents 1.0 schema on its own, and passes the checks
    draft-07 cannot express. Returns the record (parsed if it was text)."""
    record = _as_instance(record, True)
    canonical = _schema(CANONICAL_SCHEMA_PATH)
    _raise_first(_validator(canonical, canonical["$id"]), record, "not a canonical record")
    validate_cloudevent(record)
    _semantic_checks(record, check_type_derivation)
    return record


def validate_provider(name: str, body: Any) -> Any:
    """Validates a webhook body (the parsed value, or the raw bytes) against
    schemas/providers/<name>.schema.json; raises ValidationError. Returns the body."""
    if name not in PROVIDER_SCHEMA_PATHS:
        raise KeyError(f"no provider schema for {name!r}; known: {', '.join(PROVIDERS)}")
    body = _as_instance(body, False)
    schema = _schema(PROVIDER_SCHEMA_PATHS[name])
    _raise_first(_validator(schema, schema["$id"]), body, f"not a {name} webhook body")
    return body


def all_schema_paths() -> Iterable[Path]:
    return sorted(SCHEMAS_DIR.rglob("*.json"))
