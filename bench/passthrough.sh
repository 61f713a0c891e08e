#!/usr/bin/env bash
# Kafka pass-through benchmark, in one run:
#   1. the same Kafka tools (ProducerPerformance, ConsumerPerformance, EndToEndLatency) against a
#      real Apache Kafka 4.x broker directly and through strait's Kafka backend, with a table of
#      ratios (through strait / direct);
#   2. produce round-trip latency in microseconds, one record at a time, directly and through
#      strait, interleaved (passthrough_latency.py).
#   bench/passthrough.sh                 3 runs per cell, 1 and 8 partitions
#   bench/passthrough.sh --repeats 5     any bench/kafka.sh option works
# Writes bench/results/passthrough-latest.md (raw numbers of part 1: passthrough-latest.json).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
out="$HERE/results/passthrough-latest.md"
"$HERE/kafka.sh" --servers kafka,strait-passthrough --out "$out" "$@"

source "$ROOT/tests/interop/lib/kafka-broker.sh"
source "$ROOT/tests/interop/lib/strait.sh"
start_kafka_broker bench-latency >/dev/null
STRAIT_BIN="${STRAIT_BIN:-$ROOT/target/release/strait}" start_strait bench-latency \
  STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" RUST_LOG=warn >/dev/null
trap '_strait_stop; stop_kafka_broker' EXIT
venv="${STRAIT_PY_VENV:-$ROOT/.cache/venv}"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q confluent-kafka; }
"$venv/bin/python" "$HERE/passthrough_latency.py" "$KAFKA_BOOTSTRAP" "$STRAIT_KAFKA" --out "$out"
