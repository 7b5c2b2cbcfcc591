#!/usr/bin/env bash
# kafka-image.sh - builds the stand-in of the official apache/kafka image
# (deploy/docker/kafka) from the Kafka jars deploy/install-deps.sh --test
# fetched, and tags it apache/kafka:<version> (the version docker-compose.yml
# names), so that the compose file runs unchanged on a machine that cannot pull
# images. Once: nothing is done while an image of that tag built from the same
# inputs (this folder, the jar names) exists; needs the base image
# (deploy/docker/base-image.sh).
# Environment: WB_KAFKA_CACHE (default ~/.cache/webhook-bridge), as install-deps.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
version=$(grep -m1 -oE 'apache/kafka:[0-9]+\.[0-9]+\.[0-9]+' "$top/docker-compose.yml" | cut -d: -f2)
tag="apache/kafka:$version"
libs="${WB_KAFKA_CACHE:-$HOME/.cache/webhook-bridge}/kafka-$version/libs"
if [ ! -f "$libs/../libs.complete" ]; then
  echo "kafka-image.sh: no Kafka $version jars in $libs: run deploy/install-deps.sh --test" >&2
  exit 1
fi
base=$(docker image inspect -f '{{.Id}}' debian:12-slim) ||
  { echo "kafka-image.sh: no debian:12-slim: run deploy/docker/base-image.sh" >&2; exit 1; }
inputs=$( (cd "$here/kafka" && find . -type f | LC_ALL=C sort | xargs sha256sum; ls "$libs"; echo "$base") |
          sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "webhook-bridge.standin-inputs"}}' "$tag" 2>/dev/null)" = "$inputs" ]; then
  exit 0
fi
old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a "$here/kafka/." "$work/"
cp -al "$libs" "$work/libs" 2>/dev/null || cp -a "$libs" "$work/libs"
echo "kafka-image.sh: building $tag (a stand-in: Kafka $version's jars on Debian 12's JRE)" >&2
DOCKER_BUILDKIT=0 docker build -q -t "$tag" --build-arg KAFKA_VERSION="$version" \
  --label "webhook-bridge.standin-inputs=$inputs" "$work" >/dev/null
# the stand-in it replaces (other inputs), unless a container still uses it
[ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
