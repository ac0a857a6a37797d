#!/bin/sh
# kafka-storage.sh of the Kafka distribution, reduced to what infra/kafka/compose-start.sh calls.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -cp '/opt/kafka/libs/*' kafka.tools.StorageTool "$@"
