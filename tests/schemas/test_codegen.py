"""A code generator pointed at the schemas, as a consuming team would:
datamodel-code-generator makes pydantic models of the bundled canonical schema
and of each provider's schema, offline, and those models parse every record
and provider fixture and reject records the schema rejects.

The generator and pydantic are in the virtual environment deploy/install-deps.sh
--test makes (.cache/venv, pinned by tests/requirements.txt; WB_EXAMPLES_VENV
moves it); outside CI the test skips without it."""
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import wbschema as w  # noqa: E402

VENV = Path(os.environ.get("WB_EXAMPLES_VENV") or w.ROOT / ".cache" / "venv")
CODEGEN = VENV / "bin" / "datamodel-codegen"
BUNDLED = w.SCHEMAS_DIR / "canonical-event.bundled.schema.json"

# Parses each fixture with the generated model; prints, per file, the record
# dumped back (by alias, JSON mode) or the validation error.
PARSE = r"""
import json, sys, importlib
model = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
out = {}
for path in sys.argv[3:]:
    raw = open(path, "rb").read()
    try:
        out[path] = {"ok": model.model_validate_json(raw).model_dump(mode="json", by_alias=True,
                                                                    exclude_unset=True)}
    except Exception as e:
        out[path] = {"error": str(e).splitlines()[0]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    if not CODEGEN.is_file():
        problem = f"{CODEGEN} missing: run deploy/install-deps.sh --test"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(problem)
        pytest.skip(problem)
    out = tmp_path_factory.mktemp("models")
    schemas = {"canonical": BUNDLED, **{p: w.PROVIDER_SCHEMA_PATHS[p] for p in w.PROVIDERS}}
    for name, schema in schemas.items():
        r = subprocess.run(
            [str(CODEGEN), "--input", str(schema), "--input-file-type", "jsonschema",
             "--output-model-type", "pydantic_v2.BaseModel", "--formatters", "black",
             "--disable-timestamp", "--output", str(out / f"{name}_model.py")],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "no_proxy": "*", "http_proxy": "http://0.0.0.0:9",
                 "https_proxy": "http://0.0.0.0:9"})  # offline: nothing may be fetched
        assert r.returncode == 0, r.stdout + r.stderr
    return out


def instant(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse(models, module, cls, paths):
    r = subprocess.run([str(VENV / "bin" / "python"), "-c", PARSE, module, cls, *map(str, paths)],
                       cwd=models, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_models_parse_every_record(generated):
    got = parse(generated, "canonical_model", "CanonicalEvent", w.RECORD_FIXTURES)
    for path in w.RECORD_FIXTURES:
        result = got[str(path)]
        assert "ok" in result, (path.name, result)
        record, parsed = w.load_fixture(path), result["ok"]
        for name in ("specversion", "id", "source", "type", "subject", "datacontenttype",
                     "provider", "providerevent", "deadletterreason"):
            if name in record:
                assert parsed[name] == record[name], (path.name, name)
        for name in ("time", "receivedat"):  # parsed as datetimes: the same instant
            assert instant(parsed[name]) == instant(record[name]), (path.name, name)
        assert parsed["data"] == record["data"], path.name
        assert set(parsed) == set(record), path.name


def test_models_reject_what_the_schema_rejects(generated, tmp_path):
    good = w.load_fixture("records/piriod-payment-created.json")
    bad = {
        "missing-id": {k: v for k, v in good.items() if k != "id"},
        "specversion-0.3": dict(good, specversion="0.3"),
        "extra-attribute": dict(good, tenant="acme"),
        "type-upper-case": dict(good, type="piriod.Payment.created"),
        "time-without-zone": dict(good, time="2024-03-01T13:16:11"),
        "data-array": dict(good, data=[1, 2]),
    }
    paths = []
    for name, record in bad.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(record), encoding="utf-8")
    got = parse(generated, "canonical_model", "CanonicalEvent", paths)
    for p in paths:
        assert "error" in got[str(p)], (p.name, got[str(p)])


@pytest.mark.parametrize("provider", w.PROVIDERS)
def test_models_parse_provider_bodies(generated, provider):
    title = w.load_json(w.PROVIDER_SCHEMA_PATHS[provider].read_bytes())["title"]
    got = parse(generated, f"{provider}_model", title, w.FIXTURES[provider])
    for path in w.FIXTURES[provider]:
        assert "ok" in got[str(path)], (path.name, got[str(path)])
