#!/usr/bin/env bash
# kafka-console-producer.sh - Kafka's tool of that name
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.ConsoleProducer "$@"
