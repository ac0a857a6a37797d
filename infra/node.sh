#!/usr/bin/env bash
# Prints the directory holding the Node 24 binary every make target, bin/ script, test and benchmark
# runs with. A machine whose own `node` is 24.x uses it; otherwise Node's own Linux build is taken
# from the npm registry (package node-linux-<arch>) into .stack/lib/node once, and reused after.
# The services run their .ts files directly through Node 24's type stripping, so an older Node
# cannot run them at all.
#
#   infra/node.sh            print the bin directory (installing Node 24 first if needed)
#   infra/node.sh --package  the same, but always the npm registry's build (what the offline images
#                            carry: infra/images/build.sh), never the machine's own node
#   PATH="$(infra/node.sh):$PATH" node --version
#
# Overrides: HASHRELAY_NODE_VERSION (the exact version fetched, default below), HASHRELAY_STACK_DIR,
# HASHRELAY_LIB_DIR (where the downloads live, default .stack/lib).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${HASHRELAY_STACK_DIR:-$ROOT/.stack}"
WANT_MAJOR=24
VERSION="${HASHRELAY_NODE_VERSION:-24.22.3}"

if [ "${1:-}" != --package ] && command -v node >/dev/null 2>&1 && [[ "$(node --version 2>/dev/null)" == v$WANT_MAJOR.* ]]; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node.sh: no Node $WANT_MAJOR package for $(uname -m); install Node $WANT_MAJOR and put it first on PATH" >&2; exit 1 ;;
esac
prefix="${HASHRELAY_LIB_DIR:-$STACK/lib}/node"
bin="$prefix/node_modules/node-linux-$arch/bin"
if [ ! -x "$bin/node" ] || [[ "$("$bin/node" --version 2>/dev/null)" != "v$VERSION" ]]; then
  command -v npm >/dev/null 2>&1 || { echo "node.sh: npm is needed once to fetch Node $VERSION (found no Node $WANT_MAJOR)" >&2; exit 1; }
  echo "node.sh: the machine's node is $(node --version 2>/dev/null || echo missing); fetching Node $VERSION into $prefix" >&2
  mkdir -p "$prefix"
  # Two make targets started together must not install over each other.
  exec 9>"$prefix/.lock"
  flock 9
  if [ ! -x "$bin/node" ] || [[ "$("$bin/node" --version 2>/dev/null)" != "v$VERSION" ]]; then
    [ -f "$prefix/package.json" ] || echo '{"private":true}' >"$prefix/package.json"
    npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "node-linux-$arch@$VERSION" >&2
  fi
  [ -x "$bin/node" ] || { echo "node.sh: npm did not install $bin/node" >&2; exit 1; }
fi
echo "$bin"
