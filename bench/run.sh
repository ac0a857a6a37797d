#!/usr/bin/env bash
# Runs the benchmarks in bench/*.ts one after another against the local stack (`make bench` starts
# it first and stops afterwards what it started). Each script prints a table and writes
# bench-results/<name>.json.
#
#   bench/run.sh                                   every bench/*.ts, each with its default arguments
#   BENCH=ingest bench/run.sh                      only the named scripts (space-separated)
#   BENCH=ingest BENCH_ARGS="--count 50000" bench/run.sh
#
# BENCH_ARGS replaces the default arguments of every script run, so pair it with BENCH when the
# scripts take different flags. Defaults: near-duplicates gets --sizes 1000000 (its own default, 1M
# and 10M, takes much longer and much more memory); pipeline gets its own defaults spelled out
# (10,000 submissions for throughput, then 200/s for 30 s for latency); the others get none.
# docs/benchmarks.md has what a run of each takes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# The scripts are TypeScript run by Node 24's type stripping: put the same Node 24 as make first on PATH.
node_bin="$(infra/node.sh)" || { echo "bench: no Node 24 (infra/node.sh failed, see above)" >&2; exit 1; }
export PATH="$node_bin:$PATH"

default_args() {
  case "$1" in
    near-duplicates) echo "--sizes 1000000" ;;
    pipeline) echo "--count 10000 --rate 200 --seconds 30" ;;
    *) echo "" ;;
  esac
}

names=()
if [ -n "${BENCH:-}" ]; then
  for n in $BENCH; do n="${n#bench/}"; names+=("${n%.ts}"); done
else
  for f in bench/*.ts; do
    [ -e "$f" ] || continue
    n="${f##*/}"
    names+=("${n%.ts}")
  done
fi
[ ${#names[@]} -gt 0 ] || { echo "bench: no bench/*.ts scripts" >&2; exit 1; }

status=0
failed=()
for name in "${names[@]}"; do
  file="bench/$name.ts"
  if [ ! -f "$file" ]; then
    echo "bench: no such script: $file" >&2
    status=1
    failed+=("$name")
    continue
  fi
  args="${BENCH_ARGS:-$(default_args "$name")}"
  echo "==== bench $name: node $file $args ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  start=$SECONDS
  # shellcheck disable=SC2086 # args are meant to split into words
  if node "$file" $args; then
    echo "==== bench $name: ok in $((SECONDS - start)) s"
  else
    rc=$?
    echo "==== bench $name: FAILED (exit $rc) after $((SECONDS - start)) s" >&2
    status=1
    failed+=("$name")
  fi
done
[ ${#failed[@]} -eq 0 ] || echo "bench: failed: ${failed[*]}" >&2
exit $status
