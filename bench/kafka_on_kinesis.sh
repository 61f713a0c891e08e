#!/usr/bin/env bash
# Kafka clients on Kinesis: Kafka's ProducerPerformance and ConsumerPerformance through strait's
# Kinesis backend (read: fan-out and read: polling), next to PutRecords straight to the same
# upstream (strait's embedded backend), in one run; a table of ratios.
#   bench/kafka_on_kinesis.sh                  3 runs, 200,000 records of 100 bytes, 1 partition
#   bench/kafka_on_kinesis.sh --repeats 1 --records 20000     the quick form
#   bench/kafka_on_kinesis.sh --help           every option
# Writes bench/results/kafka-on-kinesis-latest.md (raw numbers next to it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
export M2_REPO="${M2_REPO:-$ROOT/.cache/m2}"
for a in "$@"; do
  if [[ "$a" == "-h" || "$a" == "--help" ]]; then
    exec python3 "$HERE/run_kafka_on_kinesis.py" --help
  fi
done
source "$ROOT/tests/interop/lib/kafka-broker.sh"
install_kafka_broker || { echo "[bench] could not resolve Kafka $KAFKA_VERSION" >&2; exit 1; }
exec python3 "$HERE/run_kafka_on_kinesis.py" --kafka-libs "$ROOT/.cache/kafka-broker/$KAFKA_VERSION/libs" \
  --kafka-version "$KAFKA_VERSION" "$@"
