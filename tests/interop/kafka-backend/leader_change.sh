#!/usr/bin/env bash
# Leader changes behind strait's Kafka backend: a 3-node Apache Kafka 4.x cluster (KRaft, every
# node broker + controller, replication 3, min.insync.replicas 2) started here, strait in front,
# and leader_change.py (confluent-kafka) killing and restarting a partition leader under load.
#   tests/interop/kafka-backend/leader_change.sh
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"

source "$repo_root/tests/interop/lib/kafka-broker.sh"
source "$repo_root/tests/interop/lib/strait.sh"
start_kafka_cluster leader-change 3 || { stop_kafka_cluster; exit 2; }
trap 'stop_kafka_cluster' EXIT
# A bootstrap port P with P + 1 + n free for nodes 1..3.
read -r port < <(python3 - <<'PY'
import socket
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    held = []
    try:
        for q in (p + 2, p + 3, p + 4):
            t = socket.socket(); t.bind(("127.0.0.1", q)); held.append(t)
        print(p); break
    except OSError:
        pass
    finally:
        for t in held: t.close()
        s.close()
PY
)
start_strait leader-change STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" \
  STRAIT_KAFKA__LISTEN="127.0.0.1:$port" STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:$port" \
  || { stop_kafka_cluster; exit 2; }
trap '_strait_stop; stop_kafka_cluster' EXIT
"$venv/bin/python" "$here/leader_change.py"
rc=$?
strait_log_tail_on_failure "$rc"
if [ $rc -ne 0 ]; then
  for f in "$KAFKA_CLUSTER_DIR"/node-*.log; do echo "# $f:"; grep -E "ERROR|FATAL" "$f" | tail -5 | sed 's/^/#   /'; done
fi
exit $rc
