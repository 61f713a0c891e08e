#!/usr/bin/env bash
# Kafka benchmark: a real Apache Kafka 4.x broker (KRaft, single node) against strait's Kafka
# front end (fsync always and fsync never), measured with Kafka's own perf tools
# (ProducerPerformance, ConsumerPerformance, EndToEndLatency), all on 127.0.0.1.
#   bench/kafka.sh                  install Kafka jars, build strait, 3 runs per cell, print the table
#   bench/kafka.sh --repeats 5      more runs
#   bench/kafka.sh --no-build       use target/release/strait as it is
#   bench/kafka.sh --help           every option
# The table is also written to bench/results/kafka-latest.md (raw numbers: kafka-latest.json).
#
# Kafka comes from Maven Central only: bench/kafka/pom.xml resolved by mvn into
# .cache/kafka-broker/<version>/libs (the local Maven repository is .cache/m2). Re-running skips
# the download when the jars are already there. KAFKA_VERSION=4.x.y overrides the version.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
DEST="$ROOT/.cache/kafka-broker/$KAFKA_VERSION"

for a in "$@"; do
  if [[ "$a" == "-h" || "$a" == "--help" ]]; then
    exec python3 "$HERE/run_kafka.py" --help
  fi
done

# The installer is shared with the Kafka-backend test suite.
source "$ROOT/tests/interop/lib/kafka-broker.sh"
install_kafka() {
  install_kafka_broker || { echo "[bench] could not resolve Kafka $KAFKA_VERSION" >&2; exit 1; }
  echo "[bench] Kafka $KAFKA_VERSION jars in $DEST/libs" >&2
}

install_kafka
exec python3 "$HERE/run_kafka.py" --kafka-libs "$DEST/libs" --kafka-version "$KAFKA_VERSION" "$@"
