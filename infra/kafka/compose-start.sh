#!/usr/bin/env bash
# Starts the Kafka broker of infra/compose.yml the way infra/stack.sh starts the local one: TLS and
# SASL/SCRAM on the client listener (certificate from the mounted /tls), PLAIN with one static user
# on the controller listener, StandardAuthorizer denying what no ACL grants. The principals' passwords come from the mounted /principals (written
# on the host by `infra/stack.sh credentials`); every one of them is added at format time.
# The broker config is infra/kafka/broker.properties.in, the template infra/stack.sh fills in too.
# Also the entry point of the test stack's Kafka image (infra/images/kafka), which sets KAFKA_CLIENT_PORT.
set -euo pipefail
P=/principals
DATA=/var/lib/kafka/data
TLS=/tls
# Clients reach the broker on 127.0.0.1:<this port> (its advertised address): publish it on the same host port.
PORT="${KAFKA_CLIENT_PORT:-19092}"
[ -s "$P/hashrelay-admin" ] && [ -s "$P/controller" ] || { echo "no principals in $P: run infra/stack.sh credentials on the host" >&2; exit 1; }
[ -s "$TLS/broker.p12" ] && [ -s "$TLS/ca.pem" ] || { echo "no TLS material in $TLS: run infra/stack.sh credentials on the host" >&2; exit 1; }
admin_pw="$(cat "$P/hashrelay-admin")"
controller_pw="$(cat "$P/controller")"
store_pw="$(cat "$TLS/store-password")"
umask 077
sed -e "s|@LISTEN_HOST@|0.0.0.0|; s|@CLIENT_PORT@|$PORT|g; s|@CONTROLLER_PORT@|19093|g" \
  -e "s|@ADMIN_PASSWORD@|$admin_pw|; s|@CONTROLLER_PASSWORD@|$controller_pw|g; s|@LOG_DIRS@|$DATA|" \
  -e "s|@TLS_DIR@|$TLS|g; s|@STORE_PASSWORD@|$store_pw|g" \
  /hashrelay/broker.properties.in >/tmp/server.properties
# For the healthcheck (kafka-broker-api-versions.sh --command-config).
cat >/tmp/client.properties <<EOF
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="hashrelay-admin" password="$admin_pw";
EOF
if [ ! -f "$DATA/meta.properties" ]; then
  scram=()
  for f in "$P"/*; do
    name="$(basename "$f")"
    [ "$name" = controller ] && continue
    scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$(cat "$f")]")
  done
  /opt/kafka/bin/kafka-storage.sh format -t "${CLUSTER_ID:?}" -c /tmp/server.properties "${scram[@]}"
fi
exec /opt/kafka/bin/kafka-server-start.sh /tmp/server.properties
