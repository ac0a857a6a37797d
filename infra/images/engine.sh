#!/usr/bin/env bash
# The container engine the image builds and the containers test pass use: a Docker engine that
# answers, else podman. On a Debian machine without either (as root), podman and runc are installed
# with apt-get and set up the way they work on hosts with cgroups in hybrid mode and lower open-file
# limits than podman's defaults (docs/development.md, the containers pass): runc, cgroupfs, explicit ulimits.
#
#   infra/images/engine.sh name           print docker or podman (installing and configuring podman if needed)
#   infra/images/engine.sh env            print `export` lines for Docker-API clients (testcontainers):
#                                         with podman, its Docker-compatible socket, started if not running
#   infra/images/engine.sh stop-started   stop the podman socket service if `env` started it
#
# Overrides: HASHRELAY_ENGINE (docker|podman), HASHRELAY_STACK_DIR (.stack), HASHRELAY_PODMAN_SOCKET.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="${HASHRELAY_STACK_DIR:-$ROOT/.stack}"
STATE="$STACK/containers"
# A drop-in read by every podman client, including the socket service that testcontainers talks to.
PODMAN_CONF=/etc/containers/containers.conf.d/50-hashrelay.conf

say() { printf 'engine: %s\n' "$*" >&2; }
die() { printf 'engine: ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

docker_works() { command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; }

# Limits a container asks for must stay under what the host lets runc set, or runc's setrlimit fails
# ("Operation not permitted"); podman's defaults (1048576 open files) exceed many hosts' limits, and
# on some hosts a value under `ulimit -H` fails too. 16384 is far more than the test stack needs.
ulimit_for() {
  local hard="$1"
  [ "$hard" = unlimited ] && hard=16384
  [ "$hard" -gt 16384 ] && hard=16384
  echo "$hard"
}

configure_podman() {
  is_root || return 0 # rootless podman reads ~/.config/containers; not set up here
  local nofile nproc want
  nofile="$(ulimit_for "$(ulimit -Hn)")"
  nproc="$(ulimit_for "$(ulimit -Hu)")"
  want="$(
    cat <<EOF
# Written by hashrelay's infra/images/engine.sh: crun refuses hosts with cgroups in hybrid mode, and
# containers may not ask for more open files or processes than this host allows.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  )"
  if [ "$(cat "$PODMAN_CONF" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$(dirname "$PODMAN_CONF")"
    printf '%s\n' "$want" >"$PODMAN_CONF"
    say "wrote $PODMAN_CONF (runc, cgroupfs, nofile/nproc $nofile/$nproc)"
  fi
}

install_podman() {
  is_root && command -v apt-get >/dev/null ||
    die "no Docker engine answers and podman is not installed: install one (Debian: apt-get install podman runc)"
  say "no Docker engine answers: installing podman and runc with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null ||
    die "apt-get install podman runc failed"
}

engine_name() {
  if [ -n "${HASHRELAY_ENGINE:-}" ]; then
    [ "$HASHRELAY_ENGINE" = podman ] && configure_podman
    echo "$HASHRELAY_ENGINE"
    return 0
  fi
  if docker_works; then echo docker; return 0; fi
  command -v podman >/dev/null && command -v runc >/dev/null || install_podman
  configure_podman
  echo podman
}

podman_socket() {
  if [ -n "${HASHRELAY_PODMAN_SOCKET:-}" ]; then echo "$HASHRELAY_PODMAN_SOCKET"
  elif is_root; then echo /run/podman/podman.sock
  else echo "${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/podman/podman.sock"; fi
}

socket_answers() { curl -sf --max-time 5 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

cmd_env() {
  local engine sock i
  engine="$(engine_name)"
  # The reaper image cannot be pulled where no registry is reachable; the tests remove their own containers.
  echo "export TESTCONTAINERS_RYUK_DISABLED=true"
  if [ "$engine" = docker ]; then return 0; fi
  sock="$(podman_socket)"
  if ! socket_answers "$sock"; then
    mkdir -p "$STATE" "$(dirname "$sock")"
    say "starting podman's Docker-compatible API on unix://$sock"
    # Own session, no inherited lock descriptors: it outlives this shell until stop-started.
    setsid nohup podman system service --time=0 "unix://$sock" >>"$STATE/podman-service.log" 2>&1 </dev/null 8>&- 9>&- &
    echo $! >"$STATE/podman-service.pid"
    for ((i = 0; i < 100; i++)); do socket_answers "$sock" && break; sleep 0.2; done
    socket_answers "$sock" || die "podman system service did not answer on $sock (log: $STATE/podman-service.log)"
  fi
  echo "export DOCKER_HOST=unix://$sock"
}

cmd_stop_started() {
  local pid
  [ -f "$STATE/podman-service.pid" ] || return 0
  pid="$(cat "$STATE/podman-service.pid")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "podman system service"; then
    kill -TERM "$pid" 2>/dev/null || true
    say "stopped the podman API service (pid $pid)"
  fi
  rm -f "$STATE/podman-service.pid"
}

case "${1:-}" in
  name) engine_name ;;
  env) cmd_env ;;
  stop-started) cmd_stop_started ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
