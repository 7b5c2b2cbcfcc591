#!/usr/bin/env bash
# run-local.sh - builds webhook-bridge (Release) and runs it. With no
# configuration it starts on the embedded in-memory Kafka (nothing durable)
# and logs the bootstrap address to read the topics with kcat.
# Arguments are passed to webhook-bridge (e.g. --config deploy/bridge.example.ini).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
cmake -S "$top" -B "$top/build/release" -DCMAKE_BUILD_TYPE=Release -DWB_TESTS=OFF
cmake --build "$top/build/release" -j"$(nproc)"
exec "$top/build/release/webhook-bridge" "$@"
