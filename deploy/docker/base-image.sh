#!/usr/bin/env bash
# base-image.sh - makes the image deploy/Dockerfile builds FROM, debian:12-slim,
# on a machine that cannot pull it (no registry reachable): a Debian 12 root
# filesystem by debootstrap (--variant=minbase) from the Debian mirror this
# machine's apt is already configured with (read from its sources at run time,
# never written here), slimmed as Debian's own -slim images are (no docs, man
# pages or locales), imported with `docker import`. Once: nothing is done when
# the image exists; remade when it is missing.
#
#   deploy/docker/base-image.sh [TAG]     default TAG debian:12-slim
# Environment: WB_DEBIAN_MIRROR overrides the mirror read from apt's sources.
set -euo pipefail

tag="${1:-debian:12-slim}"
suite=bookworm
if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 ||
  { echo "base-image.sh: debootstrap is not installed (deploy/install-deps.sh --test)" >&2; exit 1; }

# the mirrors apt already uses: deb822 sources (URIs:) or one-line sources
uris() {
  { { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk '/^URIs:/ {print $2}'
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
      awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
  } | awk '!seen[$0]++'
}
mirror="${WB_DEBIAN_MIRROR:-$(uris | grep -v security | head -n 1)}"
security=$(uris | grep security | head -n 1 || true)
if [ -z "$mirror" ]; then
  echo "base-image.sh: no Debian mirror in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "base-image.sh: debootstrap --variant=minbase $suite from $mirror (about a minute)" >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -30 "$work/debootstrap.log" >&2; exit 1; }

# apt inside the image: the same mirror, with updates and security (as
# Debian's images have them); one-line format, which deploy/librdkafka.sh reads
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [ -z "$security" ] || echo "deb $security $suite-security main"
} > "$root/etc/apt/sources.list"
# what Debian's -slim images drop, and keep dropping on every later install
cat > "$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CFG
echo 'APT::Install-Recommends "false";' > "$root/etc/apt/apt.conf.d/docker-no-recommends"
echo 'Acquire::GzipIndexes "true";' > "$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
# how this machine's apt reaches that mirror (e.g. a snapshot mirror whose
# Release files are past their Valid-Until): the same Acquire::Check-* settings
{ grep -hE '^[[:space:]]*Acquire::Check-(Valid-Until|Date)' /etc/apt/apt.conf \
    /etc/apt/apt.conf.d/* 2>/dev/null || true; } > "$root/etc/apt/apt.conf.d/90host-acquire"
[ -s "$root/etc/apt/apt.conf.d/90host-acquire" ] || rm -f "$root/etc/apt/apt.conf.d/90host-acquire"
find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root/usr/share/man"/* "$root/usr/share/info"/* "$root/usr/share/lintian"
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin "$root/var/cache/apt/archives"/*.deb \
       "$root/var/log"/*.log "$root/var/log/apt"/* "$root/debootstrap" "$root/tmp"/*
: > "$root/etc/machine-id"
tar --numeric-owner -C "$root" -c . |
  docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase $suite" - "$tag" >/dev/null
echo "base-image.sh: $tag made ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
