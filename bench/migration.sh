#!/usr/bin/env bash
# Live migration (issue 16): strait mirroring a Kinesis stream into Apache Kafka, next to a plain
# GetRecords reader of the same source (bench/loadgen), in one run; then the write hold of
# cutovers under a steady producer. The source is strait's embedded backend (release build, fsync
# always), so the source is not the limit; the target is a real Apache Kafka 4.x broker (KRaft,
# started and stopped here).
#   bench/migration.sh                       3 runs: 200,000 records of 1,000 bytes over 1 and 4
#                                            shards; 20 cutovers at 5,000 records/s
#   bench/migration.sh --repeats 1 --records 20000 --cutovers 3      the quick form
#   bench/migration.sh --help                every option
# Writes bench/results/migration-latest.md (raw numbers next to it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
export M2_REPO="${M2_REPO:-$ROOT/.cache/m2}"
for a in "$@"; do
  if [[ "$a" == "-h" || "$a" == "--help" ]]; then
    exec python3 "$HERE/run_migration.py" --help
  fi
done
source "$ROOT/tests/interop/lib/kafka-broker.sh"
start_kafka_broker bench-migration || { echo "[bench] could not start Kafka" >&2; exit 1; }
trap stop_kafka_broker EXIT
python3 "$HERE/run_migration.py" --bootstrap "$KAFKA_BOOTSTRAP" "$@"
