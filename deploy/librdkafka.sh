#!/usr/bin/env bash
# librdkafka.sh - builds the librdkafka every build of webhook-bridge links
# (deploy/run-local.sh, tests/run, CI and the image's build stage), from
# Debian's own source package of a newer suite: Debian 12 ships 2.0.2, whose
# SCRAM cannot log in to Kafka 4 (README, "librdkafka"). Built once into a
# cache folder and reused; prints that folder (the prefix: lib/, include/,
# lib/pkgconfig/rdkafka.pc) on its last line.
#
#   deploy/librdkafka.sh            build if missing, print the prefix
#   deploy/librdkafka.sh --prefix   print the prefix only (nothing built)
#
# The source comes through the Debian mirror this machine's apt is already
# configured with (read from its sources at run time, never written here),
# with a deb-src entry in a private apt state folder: the system's apt
# configuration is not touched.
# Environment: WB_RDKAFKA_CACHE (default ~/.cache/webhook-bridge),
# WB_RDKAFKA_VERSION (default below: a Debian source version).
set -euo pipefail

version="${WB_RDKAFKA_VERSION:-2.14.2-1}"
# suites searched for that version: testing (forky) holds 2.14.2-1, stable
# (trixie) 2.8.0-1; unstable would only repeat testing's newest, at the cost
# of its 12 MB index on every first run
suites="${WB_RDKAFKA_SUITES:-forky trixie}"
cache="${WB_RDKAFKA_CACHE:-$HOME/.cache/webhook-bridge}"
prefix="$cache/librdkafka-$version"

if [ "${1:-}" = "--prefix" ]; then
  echo "$prefix"
  exit 0
fi
# what the library is built with (part of the cache's check: a change rebuilds)
features="--enable-ssl --enable-gssapi --enable-zstd --enable-lz4-ext --disable-curl"
if [ "$(cat "$prefix/.complete" 2>/dev/null)" = "$version $features" ]; then
  echo "$prefix"
  exit 0
fi

# what the build needs from Debian 12 (SSL, SASL with SCRAM/PLAIN/GSSAPI
# through Cyrus SASL, zstd, lz4, zlib)
need=(build-essential pkg-config python3 dpkg-dev libssl-dev libsasl2-dev libzstd-dev liblz4-dev
      zlib1g-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# the mirror apt already uses: deb822 sources (URIs:) or one-line sources
# (a machine may have either alone: a missing file is no error under pipefail)
mirror=$({ cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
         awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
if [ -z "$mirror" ]; then
  mirror=$({ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
           awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}')
fi
if [ -z "$mirror" ]; then
  echo "librdkafka.sh: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
cat > "$work/src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt=(-o "Dir::Etc::SourceList=$work/src.sources" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
echo "librdkafka.sh: librdkafka $version from Debian's source package ($suites)" >&2
apt-get "${apt[@]}" -qq update >&2
if ! (cd "$work/src" && apt-get "${apt[@]}" -qq source --download-only "librdkafka=$version" >&2); then
  echo "librdkafka.sh: the mirror has no source package librdkafka=$version in $suites; it has:" >&2
  apt-cache "${apt[@]}" showsrc librdkafka 2>/dev/null | grep '^Version' >&2 || true
  echo "librdkafka.sh: set WB_RDKAFKA_VERSION to one of those (README, \"librdkafka\")" >&2
  exit 1
fi
# The files are those of the mirror's signed Sources index (apt checks their
# hashes; the .dsc's own signature needs debian-keyring, not installed, so
# dpkg-source warns). The upstream tree as Debian ships it, without Debian's
# patches: they unbundle nanopb/cJSON for the OpenTelemetry telemetry, which
# needs packages Debian 12 does not have (opentelemetry-proto).
(cd "$work/src" && dpkg-source --skip-patches -x ./*.dsc tree >/dev/null 2>&1)

# Features ($features): SSL, SASL through Cyrus SASL (GSSAPI; Kerberos needs
# libsasl2-modules-gssapi-mit at run time; PLAIN, SCRAM and OAUTHBEARER are
# built in), zstd, lz4 (Debian's libraries). Not curl: it serves only
# sasl.oauthbearer.method=oidc and would bring libcurl's tree into the image.
# The C library only. Installed into a temporary folder first, so that a failed or
# interrupted build never leaves a half prefix behind.
cd "$work/src/tree"
./configure --prefix="$prefix" $features >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; exit 1; }
make -C src -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -50 "$work/make.log" >&2; exit 1; }
rm -rf "$prefix.tmp"
make -C src install DESTDIR="$prefix.tmp" >/dev/null
rm -rf "$prefix"
mv "$prefix.tmp$prefix" "$prefix"
rm -rf "$prefix.tmp"
echo "$version $features" > "$prefix/.complete"
echo "$prefix"
