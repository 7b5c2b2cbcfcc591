// validate_k8s.mjs FILE.json
// FILE.json holds a JSON array of Kubernetes objects (kustomize's output,
// turned into JSON). Each one is validated against the Kubernetes API schema
// of its apiVersion and kind, as the kubernetes-models package compiles them.
// Prints one line per object ("ok Kind/name" or "error Kind/name: ...") and
// exits 1 when any object is invalid or of a kind with no schema here.
// (Bare imports resolve from tests/node_modules, the parent of this folder.)
import { readFileSync } from "node:fs";

const file = process.argv[2];
if (!file) {
  console.error("usage: validate_k8s.mjs FILE.json");
  process.exit(2);
}
const docs = JSON.parse(readFileSync(file, "utf8"));
let failed = 0;
for (const doc of docs) {
  const what = `${doc.kind}/${doc.metadata?.name}`;
  // "apps/v1" -> kubernetes-models/apps/v1, "v1" -> kubernetes-models/v1
  const spec = `kubernetes-models/${doc.apiVersion}`;
  let mod;
  try {
    mod = await import(spec);
  } catch (e) {
    console.log(`error ${what}: no schema for apiVersion ${doc.apiVersion}`);
    failed++;
    continue;
  }
  const Model = mod[doc.kind];
  if (typeof Model !== "function") {
    console.log(`error ${what}: no kind ${doc.kind} in ${doc.apiVersion}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${what}`);
  } catch (e) {
    console.log(`error ${what}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
