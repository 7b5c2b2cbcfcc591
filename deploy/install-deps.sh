#!/usr/bin/env bash
# install-deps.sh - installs what webhook-bridge needs on Debian 12, and
# nothing that is already there (idempotent: a second run changes nothing).
#   deploy/install-deps.sh           build dependencies
#   deploy/install-deps.sh --test    plus everything the tests use
set -euo pipefail

build=(build-essential cmake pkg-config libh2o-evloop-dev libjsmn-dev
       libssl-dev libinih-dev libsqlite3-dev zlib1g-dev)
test=(libcmocka-dev python3 python3-pytest python3-requests python3-jsonschema
      python3-confluent-kafka kcat nghttp2-client wrk clang libclang-rt-14-dev valgrind
      curl procps python3-h2 python3-yaml prometheus openjdk-17-jre-headless
      openjdk-17-jdk-headless maven python3-venv nginx)
# the Docker tests (tests/deploy/test_docker_*.py): Debian's engine, and
# debootstrap for the base image (deploy/docker/base-image.sh)
docker_pkgs=(docker.io debootstrap)

want=("${build[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test[@]}" "${docker_pkgs[@]}")
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

# librdkafka >= 2.6.1 from Debian's source package of a newer suite, built
# once into ~/.cache/webhook-bridge (deploy/librdkafka.sh); CMake finds it there
"$(dirname "$0")/librdkafka.sh" >/dev/null

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
  # Python packages from PyPI (the Python example's CloudEvents SDK and Kafka
  # client, the schema code generator), pinned by tests/requirements.txt, in a
  # virtual environment since Debian's python3 is externally managed; redone
  # when a requirements file changed
  venv="${WB_EXAMPLES_VENV:-$top/.cache/venv}"
  want_reqs=$(cat "$top/tests/requirements.txt" "$top/deploy/examples/python/requirements.txt")
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/requirements.done" 2>/dev/null)" != "$want_reqs" ]; then
    echo "install-deps: Python packages into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$top/tests/requirements.txt"
    printf '%s' "$want_reqs" > "$venv/requirements.done"
  fi
  # the Go example's modules (pinned by its go.sum) and a first build into Go's
  # caches, so that the tests build it offline (GOPROXY=off) in seconds
  if command -v go >/dev/null 2>&1; then
    (cd "$top/deploy/examples/go" && go mod download && go build -o /dev/null .)
  fi
  # the Java example's artifacts and Maven's plugins, into ~/.m2, by building it
  # (as shipped, and against the Java client its stand-in test uses: see
  # tests/examples/test_java.py), so that the tests build it offline (mvn -o);
  # redone when its pom.xml changed
  jdone="$top/.cache/java-example.done"
  if command -v mvn >/dev/null 2>&1 && ! cmp -s "$top/deploy/examples/java/pom.xml" "$jdone"; then
    echo "install-deps: the Java example's Maven artifacts"
    for variant in "" "-Dkafka-clients.version=2.3.1"; do
      (cd "$top/deploy/examples/java" &&
       mvn -q -B -Dstyle.color=never package -Dexample.buildDir="$top/.cache/java-example" $variant)
    done
    rm -rf "$top/.cache/java-example"
    cp "$top/deploy/examples/java/pom.xml" "$jdone"
  fi
  # Apache Kafka's jars, the release of docker-compose.yml's image, for the
  # real-Kafka tests (tests/lib/kraft.py finds them by the same rule); fetched
  # once, libs.complete marks a finished download (a partial one is redone)
  kafka=$(grep -m1 -oE 'apache/kafka:[0-9]+\.[0-9]+\.[0-9]+' "$top/docker-compose.yml" | cut -d: -f2)
  kdir="${WB_KAFKA_CACHE:-$HOME/.cache/webhook-bridge}/kafka-$kafka"
  if [ ! -f "$kdir/libs.complete" ]; then
    echo "install-deps: fetching the Kafka $kafka jars into $kdir/libs"
    rm -rf "$kdir/libs.tmp"
    mkdir -p "$kdir"
    cat > "$kdir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.webhook-bridge</groupId><artifactId>kafka-libs</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$kafka</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$kafka</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
    if command -v mvn >/dev/null 2>&1 &&
       (cd "$kdir" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
          -DoutputDirectory=libs.tmp -DincludeScope=runtime); then
      rm -rf "$kdir/libs"
      mv "$kdir/libs.tmp" "$kdir/libs"
      touch "$kdir/libs.complete"
    else
      echo "install-deps: no Kafka jars (needs mvn and Maven Central): the real-Kafka tests skip, or fail under CI" >&2
    fi
  fi
  # ---- Docker: `docker compose` (Compose v2 line) as a CLI plugin ----------
  # Built once from the Go module proxy at a pinned version (its go.mod has
  # exclude directives, so `go install ...@v` refuses it: download the module,
  # build inside it), with its version stamped; Debian's docker-compose 1.29
  # only when that cannot be built. The engine (docker.io) is above; the
  # tests start dockerd when none answers and build the images they need
  # (deploy/docker/base-image.sh, deploy/docker/kafka-image.sh).
  compose_version=v5.6.0
  plugin="$HOME/.docker/cli-plugins/docker-compose"
  if ! "$plugin" version 2>/dev/null | grep -q "version $compose_version\$"; then
    built=""
    if command -v go >/dev/null 2>&1; then
      echo "install-deps: building docker compose $compose_version (Go module proxy)"
      dir=$(go mod download -json "github.com/docker/compose/v5@$compose_version" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') &&
      mkdir -p "$HOME/.docker/cli-plugins" &&
      (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -o "$plugin.tmp" \
         -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$compose_version" ./cmd) &&
      mv "$plugin.tmp" "$plugin" && built=yes
    fi
    if [ -z "$built" ] && ! docker compose version >/dev/null 2>&1; then
      echo "install-deps: no Compose v2 built: Debian's docker-compose 1.29 instead" >&2
      DEBIAN_FRONTEND=noninteractive ${sudo:-} apt-get install -y -qq --no-install-recommends docker-compose
    fi
  fi
fi
