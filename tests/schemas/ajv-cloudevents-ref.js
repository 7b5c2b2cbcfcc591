// ajv-cli plugin (-c): registers the CloudEvents 1.0 schema under the URI that
// canonical-event.schema.json's relative "$ref" resolves to. The schema file is an
// exact copy of the published one, which has no "$id", so `ajv -r` cannot key it.
// Usage (from the repository root):
//   tests/node_modules/.bin/ajv validate --spec=draft7 --strict=true \
//     -c ajv-formats -c ./tests/schemas/ajv-cloudevents-ref.js \
//     -s schemas/canonical-event.schema.json -d tests/fixtures/records/x.json
"use strict";
const path = require("path");
const ce = require(path.join(__dirname, "..", "..", "schemas", "cloudevents", "cloudevents-1.0.schema.json"));
const BASE = "https://webhook-bridge.example/schemas/";

module.exports = function (ajv) {
  if (!ajv.getSchema(BASE + "cloudevents/cloudevents-1.0.schema.json")) {
    ajv.addSchema(ce, BASE + "cloudevents/cloudevents-1.0.schema.json");
  }
  return ajv;
};
