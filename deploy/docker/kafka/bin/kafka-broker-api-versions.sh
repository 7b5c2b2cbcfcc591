#!/usr/bin/env bash
# kafka-broker-api-versions.sh - Kafka's tool of that name
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
