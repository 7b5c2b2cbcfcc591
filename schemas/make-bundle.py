#!/usr/bin/env python3
"""Writes schemas/canonical-event.bundled.schema.json: the canonical record's
schema with the CloudEvents 1.0 schema inlined, so that any tool reads it alone,
offline, with no resolver set up (a plain jsonschema.validate, ajv without
plugins, quicktype, datamodel-code-generator, jsonschema2pojo).

    python3 schemas/make-bundle.py          # rewrite it
    python3 schemas/make-bundle.py --check  # exit 1 if stale
    python3 schemas/make-bundle.py -        # print it

canonical-event.schema.json stays the source: its first allOf branch refers
to cloudevents/cloudevents-1.0.schema.json (an exact copy of the published
file, which has no $id, so that reference resolves only through a validator
told where the file is). Here the CloudEvents definitions become
definitions/cloudevents-<name>, their "#/definitions/<name>" references
rewritten to match, and the first allOf branch points at
definitions/cloudevents-event. Nothing else changes; tests/schemas checks that
both schemas accept and reject the same records."""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
CANONICAL = HERE / "canonical-event.schema.json"
CLOUDEVENTS = HERE / "cloudevents" / "cloudevents-1.0.schema.json"
OUT = HERE / "canonical-event.bundled.schema.json"
BASE_URI = "https://webhook-bridge.example/schemas/"
CE_REF = "cloudevents/cloudevents-1.0.schema.json"
PREFIX = "cloudevents-"


def _rename_refs(node):
    """node with every "#/definitions/X" $ref turned into "#/definitions/cloudevents-X"."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref":
                if not v.startswith("#/definitions/"):
                    raise SystemExit(f"{CLOUDEVENTS}: unexpected $ref {v!r}")
                v = "#/definitions/" + PREFIX + v[len("#/definitions/"):]
            out[k] = _rename_refs(v)
        return out
    if isinstance(node, list):
        return [_rename_refs(v) for v in node]
    return node


def render(canonical, cloudevents):
    if canonical["allOf"][0] != {"$ref": CE_REF}:
        raise SystemExit(f"{CANONICAL}: allOf[0] is not {{'$ref': {CE_REF!r}}}")
    if (set(cloudevents) != {"$ref", "definitions", "type"}
            or cloudevents["$ref"] != "#/definitions/event"):
        raise SystemExit(f"{CLOUDEVENTS}: not the shape this script knows")
    root = _rename_refs(cloudevents)["$ref"]
    bundled = {
        "$schema": canonical["$schema"],
        "$id": BASE_URI + OUT.name,
        "title": canonical["title"],
        "description": canonical["description"]
        + " Bundled: the CloudEvents 1.0 JSON schema is inlined under definitions/cloudevents-*,"
        " so this file is read alone, with nothing to fetch or register.",
        "$comment": "GENERATED from canonical-event.schema.json and "
        + CE_REF + " by schemas/make-bundle.py: edit those, then run the script. "
        + canonical["$comment"],
        "allOf": [{"$ref": root}, *canonical["allOf"][1:]],
        "definitions": {PREFIX + k: v for k, v in _rename_refs(cloudevents["definitions"]).items()},
    }
    return json.dumps(bundled, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render(json.loads(CANONICAL.read_text(encoding="utf-8")),
                  json.loads(CLOUDEVENTS.read_text(encoding="utf-8")))
    if argv[1:] == ["-"]:
        sys.stdout.write(text)
    elif argv[1:] == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} is stale: run python3 schemas/make-bundle.py")
    elif argv[1:] == []:
        OUT.write_text(text, encoding="utf-8")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
