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

install_kafka() {
  local stamp="$DEST/.installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$KAFKA_VERSION $(sha1sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)" ]] \
     && compgen -G "$DEST/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
     && compgen -G "$DEST/libs/kafka-tools-$KAFKA_VERSION.jar" >/dev/null; then
    echo "[bench] Kafka $KAFKA_VERSION jars already in $DEST/libs" >&2
    return
  fi
  echo "[bench] resolving Kafka $KAFKA_VERSION (kafka_2.13 + kafka-tools) from Maven Central into $DEST/libs" >&2
  rm -rf "$DEST/libs.tmp"
  mkdir -p "$DEST"
  (cd "$HERE/kafka" && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$ROOT/.cache/m2" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$DEST/libs.tmp")
  rm -rf "$DEST/libs"
  mv "$DEST/libs.tmp" "$DEST/libs"
  echo "$KAFKA_VERSION $(sha1sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)" >"$stamp"
}

install_kafka
exec python3 "$HERE/run_kafka.py" --kafka-libs "$DEST/libs" --kafka-version "$KAFKA_VERSION" "$@"
