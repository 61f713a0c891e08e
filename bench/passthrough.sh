#!/usr/bin/env bash
# Kafka pass-through benchmark, in one run:
#   1. the same Kafka tools (ProducerPerformance, ConsumerPerformance, EndToEndLatency) against a
#      real Apache Kafka 4.x broker directly, through strait's Kafka backend, and through it with
#      backend.kafka.topic_prefix (every frame naming topics decoded and re-encoded), with a table
#      of ratios (through strait / direct);
#   2. produce round-trip latency in microseconds, one record at a time, directly and through
#      strait, interleaved (passthrough_latency.py).
#   bench/passthrough.sh                 3 runs per cell, 1 and 8 partitions
#   bench/passthrough.sh --repeats 5     any bench/kafka.sh option works
#   bench/passthrough.sh --latency-records 1000 --out FILE.md   (part 2's sample; where to write)
# Writes bench/results/passthrough-latest.md (raw numbers: passthrough-latest.json, and part 2's
# passthrough-latest-latency.json).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
out="$HERE/results/passthrough-latest.md"
latency_records=5000
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --latency-records) latency_records="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
"$HERE/kafka.sh" --servers kafka,strait-passthrough,strait-prefixed --out "$out" ${args[@]+"${args[@]}"}

source "$ROOT/tests/interop/lib/kafka-broker.sh"
source "$ROOT/tests/interop/lib/strait.sh"
start_kafka_broker bench-latency >/dev/null
STRAIT_BIN="${STRAIT_BIN:-$ROOT/target/release/strait}" start_strait bench-latency \
  STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" RUST_LOG=warn >/dev/null
trap '_strait_stop; stop_kafka_broker' EXIT
venv="${STRAIT_PY_VENV:-$ROOT/.cache/venv}"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q confluent-kafka; }
"$venv/bin/python" "$HERE/passthrough_latency.py" "$KAFKA_BOOTSTRAP" "$STRAIT_KAFKA" --records "$latency_records" \
  --out "$out" --json "${out%.md}-latency.json"
