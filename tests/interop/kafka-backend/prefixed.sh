#!/usr/bin/env bash
# backend.kafka.topic_prefix: a single Apache Kafka 4.x broker and a strait in front of it with
# topic_prefix "team-a." (metadata topic "team-a.__strait_meta"). prefix_checks.py looks at both
# sides; then the Kafka client suites of the Kafka issue run through this strait unchanged (Java
# clients and tools with transactions and KIP-848, franz-go, kcat): a prefix must be invisible
# to clients.
#   tests/interop/kafka-backend/prefixed.sh
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
export M2_REPO="${M2_REPO:-$repo_root/.cache/m2}"

source "$repo_root/tests/interop/lib/kafka-broker.sh"
source "$repo_root/tests/interop/lib/strait.sh"
start_kafka_broker prefixed || exit 2
export TOPIC_PREFIX="team-a."
port="$(free_pass_through_port)"
start_strait prefixed STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" \
  STRAIT_BACKEND__KAFKA__TOPIC_PREFIX="$TOPIC_PREFIX" \
  STRAIT_BACKEND__KAFKA__METADATA_TOPIC="${TOPIC_PREFIX}__strait_meta" \
  STRAIT_KAFKA__LISTEN="127.0.0.1:$port" STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:$port" \
  || { stop_kafka_broker; exit 2; }
trap '_strait_stop; stop_kafka_broker' EXIT

failures=()
run() { run_part "$@"; }

export KAFKA_PORT_PER_BROKER=true
run "prefix checks (both sides)" "$venv/bin/python" "$here/prefix_checks.py"
run "Kafka Java clients and tools through the prefix (with transactions)" \
  env KAFKA_TRANSACTIONS=true bash "$repo_root/tests/interop/kafka-java/run.sh"
run "franz-go through the prefix" bash "$repo_root/tests/interop/franz-go/run.sh"
run "kcat through the prefix" bash "$repo_root/tests/interop/kcat/run.sh"
if [ ${#failures[@]} -gt 0 ]; then
  strait_log_tail_on_failure 1
  kafka_broker_log_tail
  echo "# failed: ${failures[*]}"
  exit 1
fi
