#!/usr/bin/env bash
# install-deps.sh - installs what webhook-bridge needs on Debian 12, and
# nothing that is already there (idempotent: a second run changes nothing).
#   deploy/install-deps.sh           build dependencies
#   deploy/install-deps.sh --test    plus everything the tests use
set -euo pipefail

build=(build-essential cmake pkg-config librdkafka-dev libh2o-evloop-dev libjsmn-dev
       libssl-dev libinih-dev)
test=(libcmocka-dev python3 python3-pytest python3-requests python3-jsonschema
      python3-confluent-kafka kcat nghttp2-client wrk clang libclang-rt-14-dev valgrind
      curl procps python3-h2 python3-yaml)

want=("${build[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test[@]}")
  # the machine's own Node.js is used when there is one (Debian's is older)
  command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" = "--test" ]; then
  top=$(cd "$(dirname "$0")/.." && pwd)
  # kustomize for the manifest tests: kubectl has it built in; else build it once
  if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1 &&
     [ ! -x "$top/.cache/bin/kustomize" ] && command -v go >/dev/null 2>&1; then
    GOBIN="$top/.cache/bin" go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
  fi
  # node tools of the tests, pinned by tests/package-lock.json
  if [ ! -d "$top/tests/node_modules" ] ||
     [ "$top/tests/package-lock.json" -nt "$top/tests/node_modules/.package-lock.json" ]; then
    (cd "$top/tests" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
