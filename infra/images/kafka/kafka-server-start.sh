#!/bin/sh
# kafka-server-start.sh of the Kafka distribution, with infra/stack.sh's JVM settings and logging
# (infra/kafka/log4j2.properties: kafka.log and kafka-authorizer.log under /var/log/kafka).
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
  -Djava.awt.headless=true -Dkafka.logs.dir=/var/log/kafka -Dlog4j2.configurationFile=/hashrelay/log4j2.properties \
  -cp '/opt/kafka/libs/*' kafka.Kafka "$@"
