#!/usr/bin/env bash
# Builds hashrelay's container images with docker or podman (infra/images/engine.sh picks), each
# tagged with the version in package.json:
#   localhost/hashrelay:<version>               the hub image (infra/deploy/Dockerfile)
#   localhost/hashrelay-partner-sink:<version>  what a partner runs (same Dockerfile, target partner-sink)
#   localhost/hashrelay-kafka|postgres|s3proxy:<version>   the test stack (make test STACK=containers)
# Where a container registry answers, the bases are debian:bookworm-slim and node:24-bookworm-slim
# from it. Where none does, the Debian base is made with debootstrap from the machine's own Debian
# mirror (/etc/apt/sources.list*) and Node comes from the npm registry (infra/node.sh --package), so
# only the package registries the machine already uses are needed. Unchanged inputs reuse every layer.
#
#   infra/images/build.sh [hub|partner-sink|kafka|postgres|s3proxy]...   (default: all)
#
# Overrides: HASHRELAY_ENGINE, HASHRELAY_DEBIAN_MIRROR, HASHRELAY_NPM_VERSION (npm in the offline
# Node image), HASHRELAY_IMAGE_TAG (default: the package.json version), HASHRELAY_STACK_DIR, HASHRELAY_LIB_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/infra/images"
STACK="${HASHRELAY_STACK_DIR:-$ROOT/.stack}"
LIB="${HASHRELAY_LIB_DIR:-$STACK/lib}"
SUITE=bookworm
NPM_VERSION="${HASHRELAY_NPM_VERSION:-11.19.1}"
VERSION="${HASHRELAY_IMAGE_TAG:-$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$ROOT/package.json" | head -n1)}"
[ -n "$VERSION" ] || { echo "build: no version in package.json" >&2; exit 1; }

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

ENGINE="$("$HERE/engine.sh" name)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/hashrelay-images.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# A build context of its own for each image: hard links where the file system allows, else copies.
stage() {
  local dest="$WORK/$1"
  shift
  mkdir -p "$dest"
  cp -al "$@" "$dest"/ 2>/dev/null || cp -a "$@" "$dest"/
  echo "$dest"
}

# Every build reaches the package registries through the host's network (apt-get, npm ci); a failed
# one leaves no build container behind (--force-rm).
build() {
  local tag="$1" t0=$SECONDS log="$WORK/build.log"
  shift
  if ! "$ENGINE" build --network host --force-rm -t "$tag" "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building $tag failed: $ENGINE build --network host -t $tag $*"
  fi
  say "$tag ($((SECONDS - t0)) s)"
}

# The machine's configured Debian sources: the first deb822 `URIs:` or one-line `deb` entry whose
# suite is the release itself (kind=main) or its security suite (kind=security).
debian_source() {
  local kind="$1" f uri
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri="$(awk -v kind="$kind" '
      function want(s) { return kind == "security" ? s ~ /-security$/ : s !~ /-/ }
      /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if (want($i)) ok = 1 }
      /^[ \t]*$/ { if (ok && uri ~ /debian/) { print uri; exit } uri = ""; ok = 0 }
      $1 == "deb" && $2 ~ /debian/ && want($3) { print $2; exit }
      END { if (ok && uri ~ /debian/) print uri }' "$f" 2>/dev/null | head -n1)"
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  return 1
}

registry_reachable() { timeout 120 "$ENGINE" pull -q "$1" >/dev/null 2>&1; }

BASE="" NODE_IMAGE=""
choose_bases() {
  local local_base="localhost/hashrelay-debian:$SUITE"
  if exists "$local_base"; then
    BASE="$local_base"
  elif exists docker.io/library/debian:$SUITE-slim || registry_reachable docker.io/library/debian:$SUITE-slim; then
    BASE=docker.io/library/debian:$SUITE-slim
    if exists docker.io/library/node:24-$SUITE-slim || registry_reachable docker.io/library/node:24-$SUITE-slim; then
      NODE_IMAGE=docker.io/library/node:24-$SUITE-slim
    fi
  else
    debootstrap_base "$local_base"
    BASE="$local_base"
  fi
  [ -n "$NODE_IMAGE" ] || NODE_IMAGE="$(node_image)"
}

debootstrap_base() {
  local tag="$1" mirror root security t0=$SECONDS
  mirror="${HASHRELAY_DEBIAN_MIRROR:-$(debian_source main)}" || die "no Debian mirror in /etc/apt/sources.list*: set HASHRELAY_DEBIAN_MIRROR"
  if ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null || die "no registry answers and debootstrap is missing (apt-get install debootstrap)"
    say "installing debootstrap with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || die "apt-get install debootstrap failed"
  fi
  say "no container registry answers: making $tag with debootstrap from $mirror"
  root="$WORK/rootfs"
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  # Updates and security updates as the official image has them (the security source the machine
  # uses, when it has one); no package caches or lists in the image.
  {
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE"
    security="$(debian_source security)" && printf 'deb %s %s-security main\n' "$security" "$SUITE"
  } >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
  tar -C "$root" -c . | "$ENGINE" import --change 'CMD ["/bin/bash"]' - "$tag" >"$WORK/import.log" 2>&1 ||
    { tail -n 20 "$WORK/import.log" >&2; die "importing the base image failed"; }
  rm -rf "$root"
  say "$tag ($((SECONDS - t0)) s)"
}

# Node 24 and npm from the npm registry on the Debian base (infra/images/node/Dockerfile).
node_image() {
  local bin ver ctx tag
  bin="$("$ROOT/infra/node.sh" --package)" || die "infra/node.sh --package failed"
  ver="$("$bin/node" --version)"
  tag="localhost/hashrelay-node:${ver#v}"
  ctx="$WORK/node"
  mkdir -p "$ctx" "$LIB/images"
  if [ ! -s "$LIB/images/npm-$NPM_VERSION.tgz" ]; then
    (cd "$WORK" && npm pack -q "npm@$NPM_VERSION" >/dev/null && mv "npm-$NPM_VERSION.tgz" "$LIB/images/") || die "npm pack npm@$NPM_VERSION failed"
  fi
  ln "$bin/node" "$ctx/node" 2>/dev/null || cp "$bin/node" "$ctx/node"
  ln "$LIB/images/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz" 2>/dev/null || cp "$LIB/images/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz"
  build "$tag" --build-arg "BASE=$BASE" -f "$HERE/node/Dockerfile" "$ctx" >&2
  echo "$tag"
}

# npm ci in the build trusts what this machine trusts (a TLS-inspecting proxy's CA, say), as a build
# secret that no layer keeps.
ca_secret() {
  local f
  for f in "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$f" ] && [ -s "$f" ] && { echo "--secret=id=ca-certificates,src=$f"; return 0; }
  done
}
build_hub() {
  # shellcheck disable=SC2046
  build "localhost/hashrelay:$VERSION" --build-arg "NODE_IMAGE=$NODE_IMAGE" $(ca_secret) --target hub -f "$ROOT/infra/deploy/Dockerfile" "$ROOT"
}
build_sink() {
  # shellcheck disable=SC2046
  build "localhost/hashrelay-partner-sink:$VERSION" --build-arg "NODE_IMAGE=$NODE_IMAGE" $(ca_secret) --target partner-sink \
    -f "$ROOT/infra/deploy/Dockerfile" "$ROOT"
}

jars() { [ -d "$LIB/$1" ] || "$ROOT/infra/stack.sh" setup >&2 || die "infra/stack.sh setup (the $1 jars) failed"; }
JRE=""
build_jre() {
  [ -n "$JRE" ] && return 0
  JRE="localhost/hashrelay-jre:$VERSION"
  build "$JRE" --build-arg "BASE=$BASE" -f "$HERE/jre/Dockerfile" "$(stage jre "$HERE/jre/Dockerfile")"
}
build_kafka() {
  local ctx
  jars kafka
  build_jre
  ctx="$(stage kafka "$ROOT/infra/kafka/log4j2.properties" "$ROOT/infra/kafka/broker.properties.in" "$ROOT/infra/kafka/compose-start.sh")"
  mkdir -p "$ctx/libs" "$ctx/bin"
  cp -al "$LIB"/kafka/*.jar "$ctx/libs/" 2>/dev/null || cp -a "$LIB"/kafka/*.jar "$ctx/libs/"
  cp -a "$HERE/kafka/kafka-storage.sh" "$HERE/kafka/kafka-server-start.sh" "$ctx/bin/"
  build "localhost/hashrelay-kafka:$VERSION" --build-arg "JRE=$JRE" -f "$HERE/kafka/Dockerfile" "$ctx"
}
build_s3proxy() {
  local ctx
  jars s3
  build_jre
  ctx="$(stage s3proxy "$ROOT/infra/s3/logback.xml" "$HERE/s3proxy/start.sh")"
  mkdir -p "$ctx/lib"
  cp -al "$LIB"/s3/*.jar "$ctx/lib/" 2>/dev/null || cp -a "$LIB"/s3/*.jar "$ctx/lib/"
  build "localhost/hashrelay-s3proxy:$VERSION" --build-arg "JRE=$JRE" -f "$HERE/s3proxy/Dockerfile" "$ctx"
}
build_postgres() {
  build "localhost/hashrelay-postgres:$VERSION" --build-arg "BASE=$BASE" -f "$HERE/postgres/Dockerfile" \
    "$(stage postgres "$HERE/postgres/start.sh")"
}

main() {
  local t0=$SECONDS what
  [ $# -gt 0 ] || set -- hub partner-sink kafka postgres s3proxy
  say "building with $ENGINE, tag $VERSION"
  choose_bases
  for what in "$@"; do
    case "$what" in
      hub) build_hub ;;
      partner-sink) build_sink ;;
      kafka) build_kafka ;;
      postgres) build_postgres ;;
      s3proxy) build_s3proxy ;;
      *) die "unknown image '$what' (hub, partner-sink, kafka, postgres, s3proxy)" ;;
    esac
  done
  # Images an earlier build made and this one replaced (untagged now, no child): gone, so that
  # rebuilds on a CI machine do not fill its disk. The current images' layers stay the cache.
  "$ENGINE" image prune -f --filter label=org.hashrelay.image >/dev/null 2>&1 || true
  say "done in $((SECONDS - t0)) s"
}

main "$@"
