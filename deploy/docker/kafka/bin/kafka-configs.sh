#!/usr/bin/env bash
# kafka-configs.sh - Kafka's tool of that name
exec "$(dirname "$0")/kafka-run-class.sh" kafka.admin.ConfigCommand "$@"
