#!/usr/bin/env bash
# kafka-run-class.sh CLASS [ARGS] - a Java class of the Kafka jars, with the
# variables Kafka's own script reads: KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
# KAFKA_OPTS, KAFKA_LOG4J_OPTS (tools log warnings only, on stderr)
set -euo pipefail
heap=${KAFKA_HEAP_OPTS:--Xmx256m}
perf=${KAFKA_JVM_PERFORMANCE_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true}
log=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/etc/kafka/docker/tools-log4j2.properties}
# shellcheck disable=SC2086
exec java $heap $perf ${KAFKA_OPTS:-} $log -cp '/opt/kafka/libs/*' "$@"
