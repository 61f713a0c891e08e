#!/usr/bin/env bash
# Kinesis PutRecords/GetRecords through strait's Kafka backend, in one run with strait's embedded
# backend and kinesalite on the same load (bench/loadgen): a real Apache Kafka 4.4.0 KRaft broker
# is started here (jars from Maven Central, .cache/kafka-broker) and stopped after.
#   bench/kinesis_on_kafka.sh                 3 runs per server, ratios against the embedded backend
#   bench/kinesis_on_kafka.sh --repeats 5     any bench/kinesis.sh option works
# Writes bench/results/kinesis-on-kafka-latest.md (raw numbers next to it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
export M2_REPO="${M2_REPO:-$ROOT/.cache/m2}"
source "$ROOT/tests/interop/lib/kafka-broker.sh"
start_kafka_broker bench-kinesis-on-kafka >/dev/null
trap 'stop_kafka_broker' EXIT
python3 "$HERE/run_kinesis.py" --servers strait,strait-kafka,kinesalite --baseline strait \
  --kafka-bootstrap "$KAFKA_BOOTSTRAP" --out "$HERE/results/kinesis-on-kafka-latest.md" "$@"
