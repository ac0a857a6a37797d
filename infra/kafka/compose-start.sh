#!/usr/bin/env bash
# Starts the Kafka broker of infra/compose.yml the way infra/stack.sh starts the local one: SASL/SCRAM
# on the client listener, PLAIN with one static user on the controller listener, StandardAuthorizer
# denying what no ACL grants. The principals' passwords come from the mounted /principals (written
# on the host by `infra/stack.sh credentials`); every one of them is added at format time.
# Keep the properties in step with write_kafka_properties in infra/stack.sh.
set -euo pipefail
P=/principals
DATA=/var/lib/kafka/data
[ -s "$P/hashrelay-admin" ] && [ -s "$P/controller" ] || { echo "no principals in $P: run infra/stack.sh credentials on the host" >&2; exit 1; }
admin_pw="$(cat "$P/hashrelay-admin")"
controller_pw="$(cat "$P/controller")"
umask 077
cat >/tmp/server.properties <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:19093
listeners=SASL_PLAINTEXT://0.0.0.0:19092,CONTROLLER://127.0.0.1:19093
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:19092
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="hashrelay-admin" password="$admin_pw";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_pw" user_controller="$controller_pw";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:hashrelay-admin;User:controller
allow.everyone.if.no.acl.found=false
log.dirs=$DATA
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.partitions=1
EOF
# For the healthcheck (kafka-broker-api-versions.sh --command-config).
cat >/tmp/client.properties <<EOF
security.protocol=SASL_PLAINTEXT
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
