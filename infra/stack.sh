#!/usr/bin/env bash
# hashrelay local stack: Kafka (KRaft, one node or a three-node cluster), PostgreSQL and an S3-compatible server (s3proxy),
# run as plain local processes (no Docker), and on request Prometheus. Data, logs, pids and the env
# file live in .stack/.
#
#   infra/stack.sh setup                 check java/mvn/postgres/prometheus/chromium, fetch the jars (once)
#   infra/stack.sh up [kafka|pg|s3|prometheus]...  setup, start what is not running, wait healthy,
#                                        write .stack/env (no names: kafka pg s3). A running
#                                        Prometheus named again re-reads infra/prometheus/
#   infra/stack.sh down [kafka|pg|s3|prometheus]... stop (TERM, then KILL after a grace period); data
#                                        is kept (no names: all four)
#   infra/stack.sh stop-started          stop only what the last `up` started (see .stack/started-by-us)
#   infra/stack.sh clean                 down, then delete .stack except the downloaded jars (.stack/lib)
#   infra/stack.sh status                what runs and answers; exit 0 only if Kafka, PostgreSQL and
#                                        S3 are healthy (Prometheus is reported, not required)
#   infra/stack.sh env                   print `export NAME=value` lines for a shell: eval "$(infra/stack.sh env)"
#   infra/stack.sh principal [--retire|--rotate] NAME...  create Kafka SASL/SCRAM principals (or
#                                        retire them, or give them new passwords)
#   infra/stack.sh credentials           only write the principals' password files and the TLS
#                                        material (for infra/compose.yml)
#
# Kafka requires TLS and SASL/SCRAM-SHA-512 and denies what no ACL grants; clients trust the local
# CA in .stack/kafka/tls/ca.pem (made at the first start). Each principal's password is a
# file in .stack/kafka/principals/ (mode 600); hashrelay-admin is the super user; ACLs come from
# `bin/hashrelay access apply` (services/shared/kafka-access.ts).
#
# Prometheus (Debian's package; setup installs it with apt-get when it can) runs with
# infra/prometheus/prometheus.yml and its rules, data in .stack/prometheus/data, and scrapes the
# targets listed in .stack/prometheus/targets/*.json: whoever starts services writes one (make demo
# does). Its address is PROMETHEUS_URL in .stack/env.
#
# Overrides (environment): HASHRELAY_KAFKA_BROKERS (1, or 3 for a three-node KRaft cluster; see
# "Kafka cluster" below), HASHRELAY_KAFKA_PORT (19092), HASHRELAY_KAFKA_CONTROLLER_PORT (19093),
# HASHRELAY_PG_PORT (15432), HASHRELAY_S3_PORT (19000), HASHRELAY_PROMETHEUS_PORT (19090),
# HASHRELAY_START_TIMEOUT (seconds, 120),
# HASHRELAY_KAFKA_HEAP (768m), HASHRELAY_STACK_DIR (.stack), HASHRELAY_LIB_DIR (the jars, default
# $HASHRELAY_STACK_DIR/lib; the containers test pass keeps its own stack dir and shares these), HASHRELAY_S3_ACCESS_KEY_ID,
# HASHRELAY_S3_SECRET_ACCESS_KEY, HASHRELAY_S3_BUCKET, HASHRELAY_KAFKA_MVN_ARGS (e.g. -Pkafka3 for the
# Kafka 3.9 line; run `clean` first when switching, as 4.x data cannot be read by 3.9).
# A DATABASE_URL that points anywhere else than this stack's own PostgreSQL is used as is, and no
# PostgreSQL is started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
STACK="${HASHRELAY_STACK_DIR:-$ROOT/.stack}"
LIB="${HASHRELAY_LIB_DIR:-$STACK/lib}"
LOGS="$STACK/logs"
# stack-check.mjs runs on the same Node 24 as everything else. Without one (infra/node.sh failed and
# said why) the machine's node, or no helper at all (have_node_helper), is what is left.
if NODE_BIN="$("$INFRA/node.sh")"; then export PATH="$NODE_BIN:$PATH"; fi

KAFKA_PORT="${HASHRELAY_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${HASHRELAY_KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${HASHRELAY_PG_PORT:-15432}"
S3_PORT="${HASHRELAY_S3_PORT:-19000}"
PROM_PORT="${HASHRELAY_PROMETHEUS_PORT:-19090}"
START_TIMEOUT="${HASHRELAY_START_TIMEOUT:-120}"
KAFKA_HEAP="${HASHRELAY_KAFKA_HEAP:-768m}"
HOST=127.0.0.1

S3_ACCESS_KEY_ID_VALUE="${HASHRELAY_S3_ACCESS_KEY_ID:-hashrelay-local}"
S3_SECRET_VALUE="${HASHRELAY_S3_SECRET_ACCESS_KEY:-hashrelay-local-secret}"
S3_BUCKET_VALUE="${HASHRELAY_S3_BUCKET:-hashrelay}"
S3_REGION_VALUE=us-east-1
PG_DB=hashrelay
LOCAL_DATABASE_URL="postgres://postgres@$HOST:$PG_PORT/$PG_DB"

KAFKA_MAIN=kafka.Kafka
S3_MAIN=org.gaul.s3proxy.Main

say() { printf 'stack: %s\n' "$*"; }
warn() { printf 'stack: WARNING: %s\n' "$*" >&2; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------------------------------------
# helpers

# A DATABASE_URL from the environment that is not this stack's own means "use that, start no PG".
pg_external() { [ -n "${DATABASE_URL:-}" ] && [ "${DATABASE_URL}" != "$LOCAL_DATABASE_URL" ]; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# pid of a live process whose command line holds both $1 (main class / binary) and this stack's dir.
# The pid file is tried first; a scan of /proc finds processes whose pid file was lost.
find_pid() {
  local marker="$1" pidfile="$2" pid cmd
  if [ -f "$pidfile" ]; then
    pid="$(head -n1 "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then
      cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
      if [[ "$cmd" == *"$marker"* && "$cmd" == *"$STACK/"* ]]; then echo "$pid"; return 0; fi
    fi
  fi
  for d in /proc/[0-9]*; do
    cmd="$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null || true)"
    [ -n "$cmd" ] || continue
    case "$cmd" in *bash*stack.sh*|*grep*) continue ;; esac
    if [[ "$cmd" == *"$marker"* && "$cmd" == *"$STACK/"* ]]; then echo "${d#/proc/}"; return 0; fi
  done
  return 1
}

have_node_helper() { command -v node >/dev/null && [ -d "$ROOT/node_modules/kafkajs" ] && [ -d "$ROOT/node_modules/@aws-sdk/client-s3" ]; }

# Stop a process: SIGTERM, wait up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid="$1" grace="$2" name="$3" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || { say "$name stopped"; return 0; }
    sleep 0.2
  done
  warn "$name (pid $pid) did not stop within ${grace}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  warn "$name (pid $pid) is still alive after SIGKILL"
}

log_tail() { [ -f "$1" ] && { echo "---- last lines of $1 ----" >&2; tail -n 25 "$1" >&2; echo "----" >&2; }; return 0; }

# ---------------------------------------------------------------------------------------------
# setup

ensure_java_mvn() {
  local missing=()
  command -v java >/dev/null || missing+=(java)
  command -v mvn >/dev/null || missing+=(mvn)
  if [ ${#missing[@]} -gt 0 ]; then
    if is_root && command -v apt-get >/dev/null; then
      say "missing ${missing[*]}: installing openjdk-17-jre-headless and maven with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null ||
        die "apt-get install openjdk-17-jre-headless maven failed"
    else
      die "${missing[*]} not found: install Java 17+ and Maven (Debian: sudo apt-get install openjdk-17-jre-headless maven)"
    fi
  fi
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [ -n "$v" ] && [ "$v" -ge 17 ] || die "Java 17 or newer is needed (found: $(java -version 2>&1 | head -n1))"
}

# Fetch one runtime classpath with Maven, into a temp folder moved into place when complete; refetch
# when the pom changed since (a version bump), judged by the pom's checksum kept beside the jars.
fetch_lib() {
  local name="$1" pom="$INFRA/$1/pom.xml" dest="$LIB/$1" sum
  shift
  sum="$( (cat "$pom"; echo "$*") | sha256sum | cut -d' ' -f1)"
  if [ -f "$dest/.pom.sha256" ] && [ "$(cat "$dest/.pom.sha256")" = "$sum" ]; then return 0; fi
  say "fetching $name jars with Maven into ${dest#"$ROOT"/} (first run, or the pom changed)"
  rm -rf "$dest.tmp"
  mkdir -p "$LIB"
  if ! mvn -B -q -Dstyle.color=never -f "$pom" "$@" dependency:copy-dependencies -DoutputDirectory="$dest.tmp" \
    >"$LIB/$name-mvn.log" 2>&1; then
    log_tail "$LIB/$name-mvn.log"
    die "Maven could not fetch the $name jars (log: $LIB/$name-mvn.log)"
  fi
  echo "$sum" >"$dest.tmp/.pom.sha256"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

PGBIN=""
find_pgbin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$d" ] && command -v pg_ctl >/dev/null; then d="$(dirname "$(command -v pg_ctl)")"; fi
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    if is_root && command -v apt-get >/dev/null; then
      say "PostgreSQL server binaries not found: installing postgresql with apt-get"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
        die "apt-get install postgresql failed"
      d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    fi
    [ -n "$d" ] && [ -x "$d/initdb" ] ||
      die "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: install postgresql with apt-get install postgresql (or set DATABASE_URL to an existing database)"
  fi
  PGBIN="$d"
}

# Prometheus and promtool from Debian's prometheus package (the recommended exporters are not
# needed). Not having them is no reason to fail setup: only `up prometheus`, the demo's Prometheus
# and the promtool checks of `make test` need them, and each says so.
ensure_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  if is_root && command -v apt-get >/dev/null; then
    say "prometheus/promtool not found: installing Debian's prometheus package with apt-get"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
      return 0
    fi
    warn "apt-get install prometheus failed: 'up prometheus' and the promtool checks will not run"
  else
    warn "prometheus/promtool not found and cannot be installed here (needs root and apt-get):" \
      "'up prometheus', the demo's Prometheus and the promtool checks need them (Debian: sudo apt-get install prometheus)"
  fi
}

# Debian's chromium, for the operator console's browser test (puppeteer-core drives it and
# downloads no browser). Like Prometheus, not having it fails nothing here: `make test` fails that
# test instead (HASHRELAY_REQUIRE_BROWSER), saying how to install it.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  if is_root && command -v apt-get >/dev/null; then
    say "chromium not found: installing Debian's chromium package with apt-get (for the console's browser test)"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
      return 0
    fi
    warn "apt-get install chromium failed: the console's browser test will not run"
  else
    warn "chromium not found and cannot be installed here (needs root and apt-get):" \
      "the console's browser test needs it (Debian: sudo apt-get install chromium)"
  fi
}

cmd_setup() {
  ensure_java_mvn
  ensure_prometheus
  ensure_chromium
  mkdir -p "$LIB" "$LOGS"
  # shellcheck disable=SC2086
  fetch_lib kafka ${HASHRELAY_KAFKA_MVN_ARGS:-}
  fetch_lib s3
  pg_external || find_pgbin
  say "setup ok (java $(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1), jars in ${LIB#"$ROOT"/})"
}

# ---------------------------------------------------------------------------------------------
# Kafka (KRaft combined broker+controller, node 1)

KAFKA_DIR="$STACK/kafka"
KAFKA_PIDFILE="$STACK/kafka.pid"
KAFKA_LOG="$LOGS/kafka.log"      # log4j file appender
KAFKA_OUT="$LOGS/kafka.out"      # stdout/stderr of the JVM
# HASHRELAY_KAFKA_BROKERS=3 runs a three-node cluster instead ("Kafka cluster" below) with its own CA,
# password files and metadata under .stack/kafka-cluster, so the single broker's data is left alone.
# `up` records the count in .stack/kafka-nodes; later commands without the variable use it.
KAFKA_NODES="${HASHRELAY_KAFKA_BROKERS:-$(cat "$STACK/kafka-nodes" 2>/dev/null || echo 1)}"
[[ "$KAFKA_NODES" =~ ^[13]$ ]] || die "HASHRELAY_KAFKA_BROKERS (make up KAFKA_BROKERS=N) must be 1 or 3, not '$KAFKA_NODES'"
kafka_cluster() { [ "$KAFKA_NODES" -gt 1 ]; }
if kafka_cluster; then KAFKA_DIR="$STACK/kafka-cluster"; fi

kafka_jvm_opts() {
  echo "-Xms256m -Xmx$KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent" \
    "-Djava.awt.headless=true -Dkafka.logs.dir=$LOGS" \
    "-Dlog4j2.configurationFile=$INFRA/kafka/log4j2.properties -Dlog4j.configuration=file:$INFRA/kafka/log4j.properties"
}

# Local credentials: one random password per Kafka principal, in files only this user can read.
# The broker authenticates clients with SASL/SCRAM-SHA-512 and authorizes them with ACLs (deny by
# default); hashrelay-admin is the super user that provisions topics and ACLs.
PRINCIPALS_DIR="$KAFKA_DIR/principals"
KAFKA_ADMIN=hashrelay-admin
# Principals the local demo, tests and benchmarks use; others come from `infra/stack.sh principal`.
LOCAL_PRINCIPALS=(hashrelay-ingest hashrelay-dedup hashrelay-distribution
  partner-hotline-uk partner-industry-x partner-taskforce partner-partner-x
  agency-met-police agency-nca)

principal_password_file() {
  local name="$1" file="$PRINCIPALS_DIR/$1"
  [[ "$name" =~ ^[a-z0-9][a-z0-9-]{1,80}$ ]] || die "invalid principal name '$name'"
  if [ ! -s "$file" ]; then
    mkdir -p "$PRINCIPALS_DIR" && chmod 700 "$PRINCIPALS_DIR"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$file.tmp" && mv "$file.tmp" "$file")
  fi
  echo "$file"
}

# TLS for the client listener: a local CA (ca.p12, its certificate ca.pem for the clients) and the
# broker's key and certificate signed by it (broker.p12, valid for localhost, 127.0.0.1 and the
# compose service name "kafka"). Made once with the JDK's keytool; the keystore password is a
# random file like the principals' passwords.
TLS_DIR="$KAFKA_DIR/tls"
KAFKA_CA_FILE="$TLS_DIR/ca.pem"
ensure_kafka_tls() {
  [ -s "$TLS_DIR/broker.p12" ] && [ -s "$KAFKA_CA_FILE" ] && return 0
  command -v keytool >/dev/null || die "keytool (from the JDK) is needed to make the local broker's TLS certificate"
  local tmp pw
  rm -rf "$TLS_DIR" && mkdir -p "$TLS_DIR" && chmod 700 "$TLS_DIR"
  tmp="$(mktemp -d "$TLS_DIR/.new.XXXXXX")"
  (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$tmp/store-password")
  pw="$(cat "$tmp/store-password")"
  local kt=(keytool -J-Xmx64m -storetype PKCS12 -storepass "$pw")
  {
    "${kt[@]}" -genkeypair -keystore "$tmp/ca.p12" -alias ca -keyalg EC -groupname secp256r1 -validity 3650 \
      -dname "CN=hashrelay local Kafka CA" -ext bc:c &&
      "${kt[@]}" -exportcert -rfc -keystore "$tmp/ca.p12" -alias ca -file "$tmp/ca.pem" &&
      "${kt[@]}" -genkeypair -keystore "$tmp/broker.p12" -alias broker -keyalg EC -groupname secp256r1 -validity 3650 \
        -dname "CN=localhost" &&
      "${kt[@]}" -certreq -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.csr" &&
      "${kt[@]}" -gencert -keystore "$tmp/ca.p12" -alias ca -infile "$tmp/broker.csr" -outfile "$tmp/broker.pem" -rfc \
        -validity 3650 -ext san=dns:localhost,ip:127.0.0.1,dns:kafka -ext eku=serverAuth -ext ku:c=digitalSignature,keyAgreement &&
      "${kt[@]}" -importcert -noprompt -keystore "$tmp/broker.p12" -alias ca -file "$tmp/ca.pem" &&
      "${kt[@]}" -importcert -noprompt -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.pem"
  } >"$tmp/keytool.log" 2>&1 || { cat "$tmp/keytool.log" >&2; rm -rf "$tmp"; die "making the Kafka TLS certificate failed"; }
  rm -f "$tmp/broker.csr" "$tmp/keytool.log"
  chmod 600 "$tmp"/*.p12 && chmod 644 "$tmp/ca.pem" "$tmp/broker.pem"
  mv "$tmp"/* "$TLS_DIR"/ && rmdir "$tmp"
  say "made the local Kafka CA and broker certificate (${TLS_DIR#"$ROOT"/}/)"
}

write_kafka_properties() {
  mkdir -p "$KAFKA_DIR/data"
  ensure_kafka_tls
  local admin_pw controller_pw store_pw
  admin_pw="$(cat "$(principal_password_file "$KAFKA_ADMIN")")"
  controller_pw="$(cat "$(principal_password_file controller)")"
  store_pw="$(cat "$TLS_DIR/store-password")"
  # Passwords are base64url and paths have no '|', so sed with '|' needs no escaping.
  (umask 077 && sed -e "s|@LISTEN_HOST@|$HOST|; s|@CLIENT_PORT@|$KAFKA_PORT|g; s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@ADMIN_PASSWORD@|$admin_pw|; s|@CONTROLLER_PASSWORD@|$controller_pw|g; s|@LOG_DIRS@|$KAFKA_DIR/data|" \
    -e "s|@TLS_DIR@|$TLS_DIR|g; s|@STORE_PASSWORD@|$store_pw|g" \
    "$INFRA/kafka/broker.properties.in" >"$KAFKA_DIR/server.properties")
}

# Runs infra/kafka/ScramCredentials.java (kafkajs cannot alter SCRAM credentials) with commands on stdin.
scram_tool() {
  java -Xmx256m -cp "$LIB/kafka/*" "$INFRA/kafka/ScramCredentials.java" "$(kafka_bootstrap)" "$KAFKA_ADMIN" \
    "$(principal_password_file "$KAFKA_ADMIN")" "$KAFKA_CA_FILE" >>"$LOGS/kafka-principals.log" 2>&1
}

# Creates the SCRAM credentials of the given principals that this cluster does not have yet.
ensure_principals() {
  local name cmds="" names=()
  # One at a time: two test files onboarding the same partner must not race on its password file.
  exec 9>"$KAFKA_DIR/principals.lock"
  flock -w 120 9 || die "another infra/stack.sh is creating Kafka principals (lock $KAFKA_DIR/principals.lock)"
  touch "$KAFKA_DIR/principals.created"
  for name in "$@"; do
    grep -qx "$name" "$KAFKA_DIR/principals.created" && continue
    cmds+="upsert $name $(principal_password_file "$name")"$'\n'
    names+=("$name")
  done
  [ ${#names[@]} -gt 0 ] || return 0
  say "creating Kafka principals: ${names[*]}"
  printf '%s' "$cmds" | scram_tool || { log_tail "$LOGS/kafka-principals.log"; die "creating Kafka principals failed (log: $LOGS/kafka-principals.log)"; }
  printf '%s\n' "${names[@]}" >>"$KAFKA_DIR/principals.created"
}

kafka_healthy() {
  port_open "$HOST" "$KAFKA_PORT" || return 1
  if have_node_helper; then
    KAFKA_SASL_USERNAME="$KAFKA_ADMIN" KAFKA_SASL_PASSWORD="$(cat "$(principal_password_file "$KAFKA_ADMIN")")" \
      KAFKA_SSL_CA_FILE="$KAFKA_CA_FILE" NODE_NO_WARNINGS=1 node "$INFRA/stack-check.mjs" kafka "$HOST:$KAFKA_PORT" >/dev/null 2>&1
  else
    # Without node_modules: the broker logs this line once it serves clients (looked for only in
    # what was logged since the last start).
    tail -n +"$(cat "$KAFKA_DIR/log-offset" 2>/dev/null || echo 1)" "$KAFKA_LOG" 2>/dev/null | grep -q "Kafka Server started"
  fi
}

# The cluster id in $KAFKA_DIR/cluster.id, made once: a Kafka Uuid, 16 random bytes in URL-safe
# base64 without padding (not starting with '-').
kafka_cluster_id() {
  local cid=-
  if [ -f "$KAFKA_DIR/cluster.id" ]; then cat "$KAFKA_DIR/cluster.id"; return; fi
  while [[ "$cid" == -* ]]; do cid="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"; done
  echo "$cid" >"$KAFKA_DIR/cluster.id"
  echo "$cid"
}

# format_kafka_storage <cluster id> <server.properties> <log> <what>: formats one node's storage
# with the admin principal's SCRAM credential (the broker needs it before it can answer anyone).
format_kafka_storage() {
  # shellcheck disable=SC2046
  java $(kafka_jvm_opts) -cp "$LIB/kafka/*" kafka.tools.StorageTool format -t "$1" \
    -c "$2" --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=$KAFKA_ADMIN,password=$(cat "$(principal_password_file "$KAFKA_ADMIN")")]" \
    >"$3" 2>&1 ||
    { log_tail "$3"; die "$4 format failed (log: $3)"; }
}

start_kafka() {
  if find_pid "$KAFKA_MAIN" "$KAFKA_PIDFILE" >/dev/null; then
    # A broker started before the client listener took TLS would never pass the TLS health check.
    grep -q '^listeners=SASL_SSL:' "$KAFKA_DIR/server.properties" 2>/dev/null ||
      die "the running Kafka was started with an older configuration (no TLS): restart it with 'make down && make up'"
    return 0
  fi
  port_open "$HOST" "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (not this stack's Kafka); free it or set HASHRELAY_KAFKA_PORT"
  port_open "$HOST" "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is taken by another process; free it or set HASHRELAY_KAFKA_CONTROLLER_PORT"
  write_kafka_properties
  if [ -f "$KAFKA_DIR/data/meta.properties" ] && [ ! -f "$KAFKA_DIR/sasl-scram.v2" ]; then
    # Data from before the broker required SASL has no admin credentials, and data from before
    # credentials were retired instead of deleted may hold the deletion that breaks SCRAM after a
    # restart (infra/README.md): start it afresh.
    say "Kafka data predates the current SASL/ACL setup: removing local Kafka data (${KAFKA_DIR#"$ROOT"/}/data) to format it again"
    rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/principals.created" && mkdir -p "$KAFKA_DIR/data"
  fi
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cid
    cid="$(kafka_cluster_id)"
    say "formatting Kafka storage (cluster id $cid)"
    format_kafka_storage "$cid" "$KAFKA_DIR/server.properties" "$LOGS/kafka-format.log" "Kafka storage"
    : >"$KAFKA_DIR/principals.created"
    touch "$KAFKA_DIR/sasl-scram.v2"
  fi
  say "starting Kafka on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  echo "==== $(date -Is) start" >>"$KAFKA_OUT"
  echo $(($( (cat "$KAFKA_LOG" 2>/dev/null || true) | wc -l) + 1)) >"$KAFKA_DIR/log-offset"
  # setsid: own session, so the broker outlives this shell and its terminal; `down` kills it by pid.
  # shellcheck disable=SC2046
  setsid nohup java $(kafka_jvm_opts) -cp "$LIB/kafka/*" "$KAFKA_MAIN" "$KAFKA_DIR/server.properties" \
    >>"$KAFKA_OUT" 2>&1 </dev/null 8>&- &
  echo $! >"$KAFKA_PIDFILE"
  started kafka
}

# What the broker printed since the last start (JVM output, then the end of its log file).
kafka_log_tail() {
  local from
  from="$(cat "$KAFKA_DIR/log-offset" 2>/dev/null || echo 1)"
  echo "---- $KAFKA_OUT (last start) ----" >&2
  sed -n '/^==== /h;/^==== /!H;${x;p}' "$KAFKA_OUT" 2>/dev/null | tail -n 15 >&2
  echo "---- $KAFKA_LOG (since the last start, last 20 lines) ----" >&2
  tail -n +"$from" "$KAFKA_LOG" 2>/dev/null | tail -n 20 >&2
  echo "----" >&2
}

wait_kafka() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ! kafka_healthy; do
    if ! find_pid "$KAFKA_MAIN" "$KAFKA_PIDFILE" >/dev/null; then
      kafka_log_tail
      die "Kafka exited during start-up; see $KAFKA_LOG and $KAFKA_OUT"
    fi
    [ $SECONDS -lt $deadline ] || { kafka_log_tail; die "Kafka not ready after ${START_TIMEOUT}s; see $KAFKA_LOG and $KAFKA_OUT"; }
    sleep 0.5
  done
  say "Kafka ready on $HOST:$KAFKA_PORT"
}

stop_kafka() {
  local pid
  if pid="$(find_pid "$KAFKA_MAIN" "$KAFKA_PIDFILE")"; then
    say "stopping Kafka (pid $pid)"
    stop_pid "$pid" 45 Kafka
  fi
  rm -f "$KAFKA_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# Kafka cluster: three KRaft nodes (HASHRELAY_KAFKA_BROKERS=3, `make up KAFKA_BROKERS=3`)
#
# Each node is a combined broker+controller run from the same jars and filled in from the same
# template as the single broker (infra/kafka/broker.properties.in), so TLS, SASL/SCRAM and the ACL
# authorizer are the same; only its node id, the three-voter quorum and the replication of internal
# and new topics (3 replicas, min.insync.replicas 2: one node can be down and no acknowledged write
# is lost) are set after the template. Node N listens for clients on HASHRELAY_KAFKA_PORT + 2(N-1)
# and for the quorum on HASHRELAY_KAFKA_CONTROLLER_PORT + 2(N-1); its data is in
# .stack/kafka-cluster/node-N, its logs in .stack/logs/kafka-N/, its pid in .stack/kafka-N.pid.
# `up kafka` starts whichever nodes are not running (a restart after a crash) and waits for all.

kafka_bootstrap() {
  if ! kafka_cluster; then echo "$HOST:$KAFKA_PORT"; return 0; fi
  local i out=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+=("$HOST:$(cluster_client_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}

cluster_client_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
cluster_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
cluster_node_dir() { echo "$KAFKA_DIR/node-$1"; }
cluster_pidfile() { echo "$STACK/kafka-$1.pid"; }
cluster_node_pid() { find_pid "$(cluster_node_dir "$1")/server.properties" "$(cluster_pidfile "$1")"; }

cluster_voters() {
  local i out=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+=("$i@127.0.0.1:$(cluster_controller_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}

# The single broker's properties for node N's ports and data folder, with the cluster's settings in
# place of the single node's (the keys are removed, then set once at the end).
write_cluster_node_properties() {
  local i="$1" dir admin_pw controller_pw store_pw
  dir="$(cluster_node_dir "$i")"
  mkdir -p "$dir/data"
  ensure_kafka_tls
  admin_pw="$(cat "$(principal_password_file "$KAFKA_ADMIN")")"
  controller_pw="$(cat "$(principal_password_file controller)")"
  store_pw="$(cat "$TLS_DIR/store-password")"
  local overrides=(
    "node.id=$i"
    "controller.quorum.voters=$(cluster_voters)"
    "offsets.topic.replication.factor=3"
    "transaction.state.log.replication.factor=3"
    "transaction.state.log.min.isr=2"
    "share.coordinator.state.topic.replication.factor=3"
    "share.coordinator.state.topic.min.isr=2"
    "default.replication.factor=3"
    "min.insync.replicas=2"
  )
  local drop="" o
  for o in "${overrides[@]}"; do drop+="/^${o%%=*}=/d;"; done
  (umask 077 && {
    sed -e "s|@LISTEN_HOST@|$HOST|; s|@CLIENT_PORT@|$(cluster_client_port "$i")|g; s|@CONTROLLER_PORT@|$(cluster_controller_port "$i")|g" \
      -e "s|@ADMIN_PASSWORD@|$admin_pw|; s|@CONTROLLER_PASSWORD@|$controller_pw|g; s|@LOG_DIRS@|$dir/data|" \
      -e "s|@TLS_DIR@|$TLS_DIR|g; s|@STORE_PASSWORD@|$store_pw|g" -e "$drop" "$INFRA/kafka/broker.properties.in"
    echo "# node $i of a $KAFKA_NODES-node cluster (infra/stack.sh)"
    printf '%s\n' "${overrides[@]}"
  } >"$dir/server.properties")
}

start_kafka_cluster() {
  command -v node >/dev/null && [ -d "$ROOT/node_modules/kafkajs" ] ||
    die "the Kafka cluster's health check needs node_modules: run 'make setup' first"
  local i dir fresh=1 cid todo=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    [ -f "$(cluster_node_dir "$i")/data/meta.properties" ] && fresh=0
    cluster_node_pid "$i" >/dev/null && continue
    port_open "$HOST" "$(cluster_client_port "$i")" &&
      die "port $(cluster_client_port "$i") (Kafka node $i) is taken by another process (the single broker? 'make down' first); free it or set HASHRELAY_KAFKA_PORT"
    port_open "$HOST" "$(cluster_controller_port "$i")" &&
      die "port $(cluster_controller_port "$i") (Kafka node $i controller) is taken; free it or set HASHRELAY_KAFKA_CONTROLLER_PORT"
    todo+=("$i")
  done
  [ ${#todo[@]} -gt 0 ] || return 0
  mkdir -p "$KAFKA_DIR"
  cid="$(kafka_cluster_id)"
  for i in "${todo[@]}"; do
    dir="$(cluster_node_dir "$i")"
    write_cluster_node_properties "$i"
    mkdir -p "$LOGS/kafka-$i"
    if [ ! -f "$dir/data/meta.properties" ]; then
      say "formatting Kafka node $i storage (cluster id $cid)"
      format_kafka_storage "$cid" "$dir/server.properties" "$LOGS/kafka-$i/format.log" "Kafka node $i storage"
    fi
  done
  # A cluster formatted afresh has no principals yet: ensure_principals creates them once it answers.
  [ "$fresh" = 1 ] && : >"$KAFKA_DIR/principals.created"
  for i in "${todo[@]}"; do
    dir="$(cluster_node_dir "$i")"
    say "starting Kafka node $i on $HOST:$(cluster_client_port "$i") (controller $(cluster_controller_port "$i"))"
    echo "==== $(date -Is) start" >>"$LOGS/kafka-$i/kafka.out"
    # The later -Dkafka.logs.dir wins: each node logs into its own folder.
    # shellcheck disable=SC2046
    setsid nohup java $(kafka_jvm_opts) "-Dkafka.logs.dir=$LOGS/kafka-$i" -cp "$LIB/kafka/*" "$KAFKA_MAIN" "$dir/server.properties" \
      >>"$LOGS/kafka-$i/kafka.out" 2>&1 </dev/null 8>&- &
    echo $! >"$(cluster_pidfile "$i")"
  done
  echo "$KAFKA_NODES" >"$STACK/kafka-nodes"
  started kafka
}

# Node N answers a metadata request, and the metadata it serves lists every node of the cluster.
cluster_node_healthy() {
  port_open "$HOST" "$(cluster_client_port "$1")" || return 1
  KAFKA_SASL_USERNAME="$KAFKA_ADMIN" KAFKA_SASL_PASSWORD="$(cat "$(principal_password_file "$KAFKA_ADMIN")")" \
    KAFKA_SSL_CA_FILE="$KAFKA_CA_FILE" NODE_NO_WARNINGS=1 \
    node "$INFRA/stack-check.mjs" kafka "$HOST:$(cluster_client_port "$1")" "$KAFKA_NODES" >/dev/null 2>&1
}

wait_kafka_cluster() {
  local deadline=$((SECONDS + START_TIMEOUT)) i waiting
  for ((;;)); do
    waiting=()
    for ((i = 1; i <= KAFKA_NODES; i++)); do
      cluster_node_healthy "$i" && continue
      waiting+=("$i")
      if ! cluster_node_pid "$i" >/dev/null; then
        log_tail "$LOGS/kafka-$i/kafka.out"; log_tail "$LOGS/kafka-$i/kafka.log"
        die "Kafka node $i exited during start-up; see $LOGS/kafka-$i/"
      fi
    done
    [ ${#waiting[@]} -gt 0 ] || break
    if [ $SECONDS -ge $deadline ]; then
      for i in "${waiting[@]}"; do log_tail "$LOGS/kafka-$i/kafka.log"; done
      die "Kafka nodes ${waiting[*]} not ready after ${START_TIMEOUT}s; see $LOGS/kafka-N/"
    fi
    sleep 1
  done
  say "Kafka cluster ready: $(kafka_bootstrap)"
}

# All nodes are asked to stop at once: stopped one by one, the last ones would wait for a quorum
# that is already gone before giving up their controlled shutdown.
stop_kafka_cluster() {
  local i pid pids=() grace=45
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    if pid="$(cluster_node_pid "$i")"; then
      say "stopping Kafka node $i (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < grace * 5; i++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then warn "Kafka (pid $pid) did not stop within ${grace}s; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  [ ${#pids[@]} -eq 0 ] || say "Kafka cluster stopped"
  for ((i = 1; i <= KAFKA_NODES; i++)); do rm -f "$(cluster_pidfile "$i")"; done
}

cluster_status() {
  local i pid ok=0
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    if pid="$(cluster_node_pid "$i")"; then
      if cluster_node_healthy "$i"; then say "kafka-$i running  pid $pid  $HOST:$(cluster_client_port "$i")  healthy"
      else say "kafka-$i running  pid $pid  $HOST:$(cluster_client_port "$i")  NOT answering (log: $LOGS/kafka-$i/kafka.log)"; ok=1; fi
    else say "kafka-$i stopped"; ok=1; fi
  done
  return $ok
}

# One broker or the cluster, whichever this stack runs.
start_kafka_any() { if kafka_cluster; then start_kafka_cluster; else start_kafka; fi; }
wait_kafka_any() { if kafka_cluster; then wait_kafka_cluster; else wait_kafka; fi; }
stop_kafka_any() { if kafka_cluster; then stop_kafka_cluster; else stop_kafka; fi; }

# ---------------------------------------------------------------------------------------------
# S3 (s3proxy over the local filesystem)

S3_DIR="$STACK/s3"
S3_PIDFILE="$STACK/s3.pid"
S3_LOG="$LOGS/s3.log"

s3_healthy() {
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HOST:$S3_PORT/" 2>/dev/null || true)"
  [ -n "$code" ] && [ "$code" != 000 ]
}

start_s3() {
  if find_pid "$S3_MAIN" "$S3_PIDFILE" >/dev/null; then return 0; fi
  port_open "$HOST" "$S3_PORT" && die "port $S3_PORT is taken by another process (not this stack's s3proxy); free it or set HASHRELAY_S3_PORT"
  mkdir -p "$S3_DIR/data"
  cat >"$S3_DIR/s3proxy.properties" <<EOF
# Generated by infra/stack.sh on every start.
s3proxy.endpoint=http://$HOST:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY_ID_VALUE
s3proxy.credential=$S3_SECRET_VALUE
# s3proxy answers 501 NotImplemented to any x-amz-* header it does not know; ignore those instead
# (older s3proxy releases did so for the x-amz-checksum-crc32 that AWS SDK v3 sends by default).
s3proxy.ignore-unknown-headers=true
jclouds.provider=filesystem-nio2
# the storage backend's own login: unused by a local folder, but s3proxy requires it
jclouds.identity=local
jclouds.credential=local
jclouds.filesystem.basedir=$S3_DIR/data
EOF
  say "starting s3proxy on $HOST:$S3_PORT"
  echo "==== $(date -Is) start" >>"$S3_LOG"
  # C1-only JIT and the serial GC: quicker start on a small machine; plenty for a local S3
  setsid nohup java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlogback.configurationFile="$INFRA/s3/logback.xml" \
    -cp "$LIB/s3/*" "$S3_MAIN" --properties "$S3_DIR/s3proxy.properties" >>"$S3_LOG" 2>&1 </dev/null 8>&- &
  echo $! >"$S3_PIDFILE"
  started s3
}

wait_s3() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ! s3_healthy; do
    find_pid "$S3_MAIN" "$S3_PIDFILE" >/dev/null || { log_tail "$S3_LOG"; die "s3proxy exited during start-up; see $S3_LOG"; }
    [ $SECONDS -lt $deadline ] || { log_tail "$S3_LOG"; die "s3proxy not answering after ${START_TIMEOUT}s; see $S3_LOG"; }
    sleep 0.3
  done
  say "S3 ready on http://$HOST:$S3_PORT"
}

ensure_bucket() {
  if have_node_helper; then
    env S3_ENDPOINT="http://$HOST:$S3_PORT" S3_REGION="$S3_REGION_VALUE" S3_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID_VALUE" \
      S3_SECRET_ACCESS_KEY="$S3_SECRET_VALUE" S3_BUCKET="$S3_BUCKET_VALUE" \
      NODE_NO_WARNINGS=1 node "$INFRA/stack-check.mjs" s3-bucket >/dev/null || die "could not create S3 bucket $S3_BUCKET_VALUE (see $S3_LOG)"
  else
    # The filesystem backend keeps a bucket as a folder under its basedir.
    warn "node_modules missing (run make setup): creating bucket $S3_BUCKET_VALUE as a folder"
    mkdir -p "$S3_DIR/data/$S3_BUCKET_VALUE"
  fi
}

stop_s3() {
  local pid
  if pid="$(find_pid "$S3_MAIN" "$S3_PIDFILE")"; then
    say "stopping s3proxy (pid $pid)"
    stop_pid "$pid" 15 s3proxy
  fi
  rm -f "$S3_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL (private cluster; run as the postgres user when we are root, since initdb refuses root)

PG_DIR="$STACK/pg"
PG_LOG="$LOGS/postgres.log"
PG_OUTSIDE=""
# As root the server runs as the postgres user, which must be able to walk down to its data folder.
# When a parent of .stack is closed to it (a checkout under /root, say), the cluster lives in
# /var/tmp/hashrelay-pg-<hash of the stack path> instead, linked from .stack/pg.
if is_root && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$(dirname "$STACK")" 2>/dev/null; then
  PG_OUTSIDE="/var/tmp/hashrelay-pg-$(printf '%s' "$STACK" | sha256sum | cut -c1-12)"
  PG_DIR="$PG_OUTSIDE"
  PG_LOG="$PG_DIR/postgres.log"
fi
PGDATA_DIR="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_PIDFILE="$STACK/pg.pid"
# Server settings for a hub's write load (docs/operators.md, "PostgreSQL"): with the defaults (128 MB
# of shared buffers, a checkpoint per 1 GB of WAL) every checkpoint during a large import makes each
# index page the import touches be written to the WAL whole again, and backends evict dirty pages.
PG_SETTINGS=(-c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=15min)

as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_healthy() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_running_pid() {
  local pid
  [ -f "$PGDATA_DIR/postmaster.pid" ] || return 1
  pid="$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$PGDATA_DIR"* ]] &&
    echo "$pid"
}

start_pg() {
  pg_external && return 0
  [ -n "$PGBIN" ] || find_pgbin
  if pg_running_pid >/dev/null; then return 0; fi
  port_open "$HOST" "$PG_PORT" && die "port $PG_PORT is taken by another process (not this stack's PostgreSQL); free it or set HASHRELAY_PG_PORT"
  mkdir -p "$PG_DIR" "$PG_SOCK" "$LOGS"
  touch "$PG_LOG"
  if [ -n "$PG_OUTSIDE" ]; then
    ln -sfn "$PG_OUTSIDE" "$STACK/pg"
    ln -sfn "$PG_LOG" "$LOGS/postgres.log"
  fi
  if is_root; then
    # the postgres user must reach the data folder through every parent
    chmod a+x "$STACK" "$PG_DIR"
    chown postgres: "$PG_DIR" "$PG_SOCK" "$PG_LOG"
    runuser -u postgres -- test -x "$PG_DIR" ||
      die "user postgres cannot reach $PG_DIR: make its parent folders traversable (chmod a+x) or set DATABASE_URL"
  fi
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    say "initdb ${PGDATA_DIR#"$ROOT"/} ($("$PGBIN/postgres" --version))"
    rm -rf "$PGDATA_DIR"
    as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$LOGS/pg-initdb.log" 2>&1 || { log_tail "$LOGS/pg-initdb.log"; die "initdb failed (log: $LOGS/pg-initdb.log)"; }
  fi
  say "starting PostgreSQL on $HOST:$PG_PORT"
  # pg_ctl daemonizes the postmaster; setsid also detaches pg_ctl itself from this shell's session.
  local as=()
  is_root && as=(runuser -u postgres --)
  setsid -w "${as[@]}" "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$START_TIMEOUT" \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=$HOST ${PG_SETTINGS[*]}" start </dev/null >/dev/null 2>&1 8>&- ||
    { log_tail "$PG_LOG"; die "PostgreSQL did not start; see $PG_LOG"; }
  started pg
}

wait_pg() {
  pg_external && return 0
  local deadline=$((SECONDS + START_TIMEOUT)) pid
  while ! pg_healthy; do
    pg_running_pid >/dev/null || { log_tail "$PG_LOG"; die "PostgreSQL is not running; see $PG_LOG"; }
    [ $SECONDS -lt $deadline ] || { log_tail "$PG_LOG"; die "PostgreSQL not ready after ${START_TIMEOUT}s; see $PG_LOG"; }
    sleep 0.3
  done
  pid="$(pg_running_pid)" && echo "$pid" >"$PG_PIDFILE"
  if [ -z "$("$PGBIN/psql" -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'")" ]; then
    "$PGBIN/createdb" -h "$HOST" -p "$PG_PORT" -U postgres -O postgres "$PG_DB" || die "createdb $PG_DB failed"
    say "created database $PG_DB"
  fi
  say "PostgreSQL ready on $HOST:$PG_PORT (database $PG_DB)"
}

stop_pg() {
  pg_external && return 0
  local pid
  if pid="$(pg_running_pid)"; then
    [ -n "$PGBIN" ] || find_pgbin
    say "stopping PostgreSQL (pid $pid)"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 15 stop >/dev/null 2>&1 ||
      stop_pid "$pid" 5 PostgreSQL
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then warn "PostgreSQL (pid $pid) is still running; see $PG_LOG"; else say "PostgreSQL stopped"; fi
  fi
  rm -f "$PG_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# Prometheus (Debian's binary; config and rules from infra/prometheus/, copied in at each start)

PROM_DIR="$STACK/prometheus"
PROM_PIDFILE="$STACK/prometheus.pid"
PROM_LOG="$LOGS/prometheus.log"
PROM_MARKER="--config.file=$PROM_DIR/prometheus.yml"

prometheus_healthy() { curl -sf -o /dev/null --max-time 2 "http://$HOST:$PROM_PORT/-/ready"; }

# The config and rules as they are in infra/prometheus/; targets/ is left alone (others write it).
copy_prometheus_config() {
  mkdir -p "$PROM_DIR/targets" "$PROM_DIR/data" "$LOGS"
  rm -rf "$PROM_DIR/rules.new" && cp -r "$INFRA/prometheus/rules" "$PROM_DIR/rules.new"
  rm -rf "$PROM_DIR/rules" && mv "$PROM_DIR/rules.new" "$PROM_DIR/rules"
  cp "$INFRA/prometheus/prometheus.yml" "$PROM_DIR/prometheus.yml"
  if command -v promtool >/dev/null; then
    promtool check config "$PROM_DIR/prometheus.yml" >"$LOGS/promtool.log" 2>&1 ||
      { cat "$LOGS/promtool.log" >&2; die "promtool refuses infra/prometheus/ (see above)"; }
  fi
}

start_prometheus() {
  command -v prometheus >/dev/null ||
    die "prometheus not found: run 'infra/stack.sh setup' as root with apt-get, or install Debian's prometheus package (sudo apt-get install prometheus)"
  if find_pid "$PROM_MARKER" "$PROM_PIDFILE" >/dev/null; then
    copy_prometheus_config
    curl -sf -o /dev/null --max-time 5 -X POST "http://$HOST:$PROM_PORT/-/reload" ||
      warn "the running Prometheus did not take the reload; restart it (down prometheus, up prometheus)"
    return 0
  fi
  port_open "$HOST" "$PROM_PORT" && die "port $PROM_PORT is taken by another process (not this stack's Prometheus); free it or set HASHRELAY_PROMETHEUS_PORT"
  copy_prometheus_config
  say "starting Prometheus on $HOST:$PROM_PORT"
  echo "==== $(date -Is) start" >>"$PROM_LOG"
  setsid nohup prometheus "$PROM_MARKER" --storage.tsdb.path="$PROM_DIR/data" --storage.tsdb.retention.time=2d \
    --web.listen-address="$HOST:$PROM_PORT" --web.enable-lifecycle >>"$PROM_LOG" 2>&1 </dev/null 8>&- &
  echo $! >"$PROM_PIDFILE"
  started prometheus
}

wait_prometheus() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ! prometheus_healthy; do
    find_pid "$PROM_MARKER" "$PROM_PIDFILE" >/dev/null || { log_tail "$PROM_LOG"; die "Prometheus exited during start-up; see $PROM_LOG"; }
    [ $SECONDS -lt $deadline ] || { log_tail "$PROM_LOG"; die "Prometheus not ready after ${START_TIMEOUT}s; see $PROM_LOG"; }
    sleep 0.3
  done
  say "Prometheus ready on http://$HOST:$PROM_PORT (targets: ${PROM_DIR#"$ROOT"/}/targets/*.json)"
}

stop_prometheus() {
  local pid
  if pid="$(find_pid "$PROM_MARKER" "$PROM_PIDFILE")"; then
    say "stopping Prometheus (pid $pid)"
    stop_pid "$pid" 15 Prometheus
  fi
  rm -f "$PROM_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# env file and commands

env_lines() {
  local db="$LOCAL_DATABASE_URL"
  pg_external && db="$DATABASE_URL"
  cat <<EOF
KAFKA_BROKERS=$(kafka_bootstrap)
KAFKA_SASL_MECHANISM=scram-sha-512
KAFKA_SSL=true
KAFKA_SSL_CA_FILE=$KAFKA_CA_FILE
KAFKA_PRINCIPALS_DIR=$PRINCIPALS_DIR
KAFKA_AUTHORIZER_LOG=$LOGS/kafka-authorizer.log
DATABASE_URL=$db
S3_ENDPOINT=http://$HOST:$S3_PORT
S3_REGION=$S3_REGION_VALUE
S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID_VALUE
S3_SECRET_ACCESS_KEY=$S3_SECRET_VALUE
S3_BUCKET=$S3_BUCKET_VALUE
S3_FORCE_PATH_STYLE=true
PROMETHEUS_URL=http://$HOST:$PROM_PORT
PROMETHEUS_TARGETS_DIR=$PROM_DIR/targets
EOF
}

# The services named, or without names the default set ($1: what no names means).
services_from_args() {
  local defaults="$1" s out=()
  shift
  # shellcheck disable=SC2086
  [ $# -eq 0 ] && set -- $defaults
  for s in "$@"; do
    case "$s" in
      kafka | pg | s3 | prometheus) out+=("$s") ;;
      postgres | postgresql) out+=(pg) ;;
      *) die "unknown service '$s' (kafka, pg, s3, prometheus)" ;;
    esac
  done
  echo "${out[*]}"
}

want() { [[ " $SERVICES " == *" $1 "* ]]; }

# Each service `up` starts is added to the marker at once, so a failed `up` can be undone too.
STARTED=()
started() { STARTED+=("$1"); echo "$1" >>"$STACK/started-by-us"; }

cmd_up() {
  SERVICES="$(services_from_args "kafka pg s3" "$@")"
  cmd_setup
  mkdir -p "$STACK" "$LOGS"
  # started-by-us lists the services this `up` started; a test run that found the stack down can
  # stop them again with `stop-started`. If everything was already running, there is no marker.
  rm -f "$STACK/started-by-us"
  # start everything first, then wait: the JVMs boot in parallel
  want s3 && start_s3
  want kafka && start_kafka_any
  want pg && start_pg
  want prometheus && start_prometheus
  want pg && wait_pg
  want s3 && { wait_s3; ensure_bucket; }
  want kafka && { wait_kafka_any; ensure_principals "${LOCAL_PRINCIPALS[@]}"; }
  want prometheus && wait_prometheus
  env_lines >"$STACK/env.tmp" && mv "$STACK/env.tmp" "$STACK/env"
  want pg && pg_external && say "PostgreSQL: using DATABASE_URL from the environment (none started)"
  if [ ${#STARTED[@]} -gt 0 ]; then
    say "started: ${STARTED[*]} (recorded in ${STACK#"$ROOT"/}/started-by-us)"
  else
    say "nothing to start: all running"
  fi
  say "env written to ${STACK#"$ROOT"/}/env"
}

cmd_down() {
  SERVICES="$(services_from_args "kafka pg s3 prometheus" "$@")"
  want prometheus && stop_prometheus
  want kafka && stop_kafka_any
  want s3 && stop_s3
  want pg && stop_pg
  if [ -f "$STACK/started-by-us" ]; then
    local s
    for s in $SERVICES; do sed -i "/^$s\$/d" "$STACK/started-by-us"; done
    [ -s "$STACK/started-by-us" ] || rm -f "$STACK/started-by-us"
  fi
  return 0
}

cmd_stop_started() {
  # An empty record names nothing to stop (cmd_down with no names would stop everything).
  if [ -s "$STACK/started-by-us" ]; then
    # shellcheck disable=SC2046
    cmd_down $(cat "$STACK/started-by-us")
  else
    rm -f "$STACK/started-by-us"
    say "nothing to stop: the stack was already running before the last 'up'"
  fi
}

cmd_clean() {
  cmd_down
  [ -d "$STACK" ] || return 0
  [ -n "$PG_OUTSIDE" ] && rm -rf "$PG_OUTSIDE"
  find "$STACK" -mindepth 1 -maxdepth 1 ! -name lib -exec rm -rf {} +
  say "removed ${STACK#"$ROOT"/} data (kept ${LIB#"$ROOT"/})"
}

cmd_status() {
  local ok=0 pid
  if kafka_cluster; then cluster_status || ok=1
  elif pid="$(find_pid "$KAFKA_MAIN" "$KAFKA_PIDFILE")"; then
    if kafka_healthy; then say "kafka  running  pid $pid  $HOST:$KAFKA_PORT  healthy"
    else say "kafka  running  pid $pid  $HOST:$KAFKA_PORT  NOT answering (log: $KAFKA_LOG)"; ok=1; fi
  else say "kafka  stopped"; ok=1; fi
  if pg_external; then
    if command -v pg_isready >/dev/null && pg_isready -q -d "$DATABASE_URL" -t 2; then say "pg     external DATABASE_URL  healthy"
    else say "pg     external DATABASE_URL (not checked or not answering)"; fi
  elif pid="$(pg_running_pid)"; then
    find_pgbin
    if pg_healthy; then say "pg     running  pid $pid  $HOST:$PG_PORT  healthy"
    else say "pg     running  pid $pid  $HOST:$PG_PORT  NOT answering (log: $PG_LOG)"; ok=1; fi
  else say "pg     stopped"; ok=1; fi
  if pid="$(find_pid "$S3_MAIN" "$S3_PIDFILE")"; then
    if s3_healthy; then say "s3     running  pid $pid  http://$HOST:$S3_PORT  healthy"
    else say "s3     running  pid $pid  http://$HOST:$S3_PORT  NOT answering (log: $S3_LOG)"; ok=1; fi
  else say "s3     stopped"; ok=1; fi
  if pid="$(find_pid "$PROM_MARKER" "$PROM_PIDFILE")"; then
    if prometheus_healthy; then say "prometheus  running  pid $pid  http://$HOST:$PROM_PORT  healthy (optional)"
    else say "prometheus  running  pid $pid  http://$HOST:$PROM_PORT  NOT answering (log: $PROM_LOG; optional)"; fi
  else say "prometheus  stopped (optional: infra/stack.sh up prometheus)"; fi
  [ -f "$STACK/started-by-us" ] && say "started by the last 'up': $(paste -sd' ' "$STACK/started-by-us")"
  return $ok
}

cmd_env() { env_lines | sed 's/^/export /'; }

# Password files only, for a broker this script does not run (infra/compose.yml formats its storage
# with every principal found there).
cmd_credentials() {
  local name
  for name in "$KAFKA_ADMIN" controller "${LOCAL_PRINCIPALS[@]}"; do principal_password_file "$name" >/dev/null; done
  ensure_kafka_tls
  say "password files of $KAFKA_ADMIN, controller and ${#LOCAL_PRINCIPALS[@]} local principals in ${PRINCIPALS_DIR#"$ROOT"/}/; TLS material in ${TLS_DIR#"$ROOT"/}/"
}

# principal NAME...          create SCRAM credentials (password in .stack/kafka/principals/NAME)
# principal --rotate NAME... give them a new random password (the old one stops working at once;
#                            the principal's services need a restart to read the new file)
# principal --retire NAME... replace them with a random password nobody holds: the principal can
#                            no longer authenticate. Not a deletion: on Kafka 4.1.2 (and 4.4.0) a
#                            broker restarted after a SCRAM credential was deleted authenticated no
#                            SCRAM user at all (infra/README.md), so credentials are never deleted.
# The broker answers within $1 seconds: a loaded machine (parallel tests, TLS handshakes) can make
# one health check miss although the broker is up.
kafka_answers_within() {
  local deadline=$((SECONDS + $1))
  until kafka_healthy; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 1
  done
}

cmd_principal() {
  [ $# -gt 0 ] || die "usage: infra/stack.sh principal [--retire|--rotate] NAME..."
  port_open "$HOST" "$KAFKA_PORT" || die "Kafka is not running: run 'make up' first"
  kafka_answers_within 60 || die "Kafka listens on $HOST:$KAFKA_PORT but does not answer (see $KAFKA_LOG)"
  if [ "$1" = "--retire" ] || [ "$1" = "--rotate" ]; then
    local mode="${1#--}"
    shift
    [ $# -gt 0 ] || die "usage: infra/stack.sh principal --$mode NAME..."
    local name cmds="" tmp
    # the same lock as creation: a concurrent `principal NAME` must not read a half-replaced file
    exec 9>"$KAFKA_DIR/principals.lock"
    flock -w 120 9 || die "another infra/stack.sh is changing Kafka principals (lock $KAFKA_DIR/principals.lock)"
    tmp="$(mktemp -d "$PRINCIPALS_DIR/.new.XXXXXX")"
    for name in "$@"; do
      [[ "$name" =~ ^[a-z0-9][a-z0-9-]{1,80}$ ]] || { rm -rf "$tmp"; die "invalid principal name '$name'"; }
      [ "$name" != "$KAFKA_ADMIN" ] || { rm -rf "$tmp"; die "refusing to $mode the admin principal (its password is in the broker config: make clean)"; }
      if [ "$mode" = rotate ] && ! grep -qx "$name" "$KAFKA_DIR/principals.created"; then
        rm -rf "$tmp"; die "no principal '$name' on this cluster to rotate (create it: infra/stack.sh principal $name)"
      fi
      (umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$tmp/$name")
      cmds+="upsert $name $tmp/$name"$'\n'
    done
    printf '%s' "$cmds" | scram_tool || { rm -rf "$tmp"; log_tail "$LOGS/kafka-principals.log"; die "infra/stack.sh principal --$mode failed (log: $LOGS/kafka-principals.log)"; }
    if [ "$mode" = rotate ]; then
      # the broker holds the new passwords: only now replace the files the services read at start
      for name in "$@"; do mv "$tmp/$name" "$PRINCIPALS_DIR/$name"; done
      rm -rf "$tmp"
      say "rotated Kafka principals (new passwords in ${PRINCIPALS_DIR#"$ROOT"/}/; restart their services): $*"
    else
      rm -rf "$tmp"
      for name in "$@"; do rm -f "$PRINCIPALS_DIR/$name"; sed -i "/^$name\$/d" "$KAFKA_DIR/principals.created"; done
      say "retired Kafka principals (their passwords are gone): $*"
    fi
  else
    ensure_principals "$@"
    say "Kafka principals ready: $* (passwords in ${PRINCIPALS_DIR#"$ROOT"/}/)"
  fi
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# Commands that start, stop or set up the stack take turns: a second `make up`/`make test` started
# alongside waits here instead of racing the first through TLS files, formatting or a start. The
# lock lives in lib/, which `clean` keeps, so it outlasts a clean run by another caller.
# Every process the stack starts is given no fd 8 (`8>&-`): one that inherited it would hold the
# lock for as long as it runs.
hold_stack_lock() {
  mkdir -p "$LIB"
  exec 8>"$LIB/.stack.lock"
  if ! flock -n 8; then
    say "another infra/stack.sh is setting up, starting or stopping this stack; waiting for it"
    flock -w 900 8 || die "still locked after 15 minutes (lock $LIB/.stack.lock)"
  fi
}

main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    setup | up | down | stop-started | clean | credentials) hold_stack_lock ;;
  esac
  case "$cmd" in
    setup) cmd_setup ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    stop-started) cmd_stop_started ;;
    clean) cmd_clean ;;
    status) cmd_status ;;
    env) cmd_env ;;
    principal) cmd_principal "$@" ;;
    credentials) cmd_credentials ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
