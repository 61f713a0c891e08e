#!/usr/bin/env bash
# strait's Kafka backend against a real Apache Kafka 4.x broker (KRaft, single node, jars from Maven
# Central), both started and stopped here:
#   1. checks.py: both-ways visibility (through strait vs directly), Metadata and ApiVersions
#      rewriting, bad frames, /readyz and a broker kill -9 + restart under idempotent load;
#   2. the Kafka client suites of the Kafka issue through strait's pass-through: Apache Kafka Java
#      clients and tools (plus transactions and the KIP-848 consumer protocol), franz-go, kcat;
#   3. leader_change.sh: a 3-node cluster, a partition leader killed and restarted under load;
#   4. secured.sh: strait's own TLS + SASL (PLAIN, SCRAM-SHA-256/512) to a SASL_SSL-only broker.
#   tests/interop/kafka-backend/run.sh
# Caches: .cache/kafka-broker (the broker), .cache/m2 (M2_REPO), .cache/venv (STRAIT_PY_VENV).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
export M2_REPO="${M2_REPO:-$repo_root/.cache/m2}"

source "$repo_root/tests/interop/lib/kafka-broker.sh"
source "$repo_root/tests/interop/lib/strait.sh"
start_kafka_broker kafka-backend || exit 2

# A bootstrap port P whose broker port (P + 1 + node id 1) is free too.
read -r port < <(python3 - <<'PY'
import socket
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 2)); t.close(); s.close(); print(p); break
    except OSError:
        s.close(); t.close()
PY
)
start_strait kafka-backend STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" \
  STRAIT_KAFKA__LISTEN="127.0.0.1:$port" STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:$port" || { stop_kafka_broker; exit 2; }
trap '_strait_stop; stop_kafka_broker' EXIT
[ "$STRAIT_ENDPOINT" = none ] || { echo "strait served the Kinesis API on the Kafka backend" >&2; exit 1; }

failures=()
run() { # name, command...
  local name="$1"; shift
  echo "## $name"
  "$@"; local rc=$?
  [ $rc -eq 0 ] || failures+=("$name")
}

export KAFKA_PORT_PER_BROKER=true
run "pass-through checks" "$venv/bin/python" "$here/checks.py"
run "Kafka Java clients and tools (with transactions)" env KAFKA_TRANSACTIONS=true bash "$repo_root/tests/interop/kafka-java/run.sh"
run "franz-go" bash "$repo_root/tests/interop/franz-go/run.sh"
run "kcat" bash "$repo_root/tests/interop/kcat/run.sh"
if [ ${#failures[@]} -gt 0 ]; then
  strait_log_tail_on_failure 1
  kafka_broker_log_tail
fi
# The single broker and its strait make way for the 3-node cluster.
_strait_stop; _strait_pid=""; stop_kafka_broker
run "leader change on a 3-node cluster" bash "$here/leader_change.sh"
run "strait's TLS and SASL login (PLAIN, SCRAM-SHA-256/512) to a SASL_SSL-only broker" bash "$here/secured.sh"

if [ ${#failures[@]} -gt 0 ]; then
  echo "# failed: ${failures[*]}"
  exit 1
fi
