#!/usr/bin/env bash
# Kafka clients on the Kinesis backend (backend.type: kinesis), against two independent
# upstreams, both started and stopped here:
#   1. strait's embedded backend (the only upstream with enhanced fan-out and /metrics), read
#      both ways strait can: polling GetRecords, and its own enhanced fan-out;
#   2. moto's server (PyPI), a Kinesis written by others, with its own sequence numbers.
# moto's DynamoDB holds the shared state (backend.kinesis.state.type dynamodb) in both.
# checks.py drives confluent-kafka through strait and boto3 straight at the upstream; then
# suites.sh runs the Kafka Java, franz-go and kcat suites on this backend.
#   tests/interop/kafka-on-kinesis/run.sh
# Caches: .cache/venv (STRAIT_PY_VENV).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
export STRAIT_BIN="${STRAIT_BIN:-$repo_root/target/debug/strait}"
moto_version="5.2.5"

moto_pid=""; tmp="$(mktemp -d /tmp/strait-kafka-on-kinesis.XXXXXX)"
source "$repo_root/tests/interop/lib/strait.sh"
cleanup() {
  [ -z "$moto_pid" ] || { kill "$moto_pid" 2>/dev/null; wait "$moto_pid" 2>/dev/null; }
  _strait_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -x "$venv/bin/python" ] || { echo "no Python venv at $venv (tests/interop/python/run.sh makes it)" >&2; exit 2; }
if [ ! -x "$venv/bin/moto_server" ]; then
  "$venv/bin/pip" install -q "moto[server]==$moto_version"
fi
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
failures=()

# moto: an upstream of its own (step 2), and DynamoDB for backend.kinesis.state.type dynamodb
# in both steps.
port="$(free_port)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$tmp/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  "$venv/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { echo "moto_server exited:" >&2; cat "$tmp/moto.log" >&2; exit 2; }
  sleep 0.2
done
export STATE_DYNAMODB="http://127.0.0.1:$port"

# 1. strait's embedded backend as the upstream.
# With Kinesis's per-shard limits, as no emulator has them.
start_strait kafka-on-kinesis-upstream STRAIT_KINESIS__THROTTLING=aws || exit 2
trap cleanup EXIT
for read in polling fan-out; do
  run_part "strait-upstream/$read" env READ=$read UPSTREAM="$STRAIT_ENDPOINT" UPSTREAM_KIND=strait \
    UPSTREAM_ADMIN="$STRAIT_ADMIN" "$venv/bin/python" "$here/checks.py"
done

# 2. moto as the upstream.
run_part moto-upstream env UPSTREAM="http://127.0.0.1:$port" UPSTREAM_KIND=moto "$venv/bin/python" "$here/checks.py"

# 3. The Kafka Java, franz-go and kcat suites with backend.type kinesis (their own upstream).
run_part kafka-suites bash "$here/suites.sh"

if [ ${#failures[@]} -gt 0 ]; then
  echo "# kafka-on-kinesis failed against: ${failures[*]}"
  exit 1
fi
echo "# kafka-on-kinesis: every check passed against both upstreams"
