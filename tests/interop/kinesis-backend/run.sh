#!/usr/bin/env bash
# strait's Kinesis backend (backend.type: kinesis), today its pass-through, against two
# independent upstreams, both started and stopped here:
#   1. moto's server (PyPI) with IAM authentication on: checks.py (re-signing for real, the
#      upstream's errors as sent, strait's own wrong keys, an unreachable upstream);
#   2. strait's embedded backend as the upstream (the only one with enhanced fan-out, h2 and
#      CBOR): the boto3 suites, the Java SDK v2 suite (CBOR over HTTP/1.1 and h2c, JSON over
#      TLS, enhanced fan-out included), the Rust SDK, KCL 3 (enhanced fan-out, leases in
#      moto's DynamoDB) and KPL 1 (aggregated, over TLS) run against the pass-through. The KCL
#      and KPL runs cross to Kafka on this same strait (backend.type kinesis, polling): the KCL
#      suite's Kafka producer writes through it and the KPL suite's Kafka group reads through it.
#   tests/interop/kinesis-backend/run.sh
# Caches: .cache/venv (STRAIT_PY_VENV), .cache/m2 (M2_REPO).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
export M2_REPO="${M2_REPO:-$repo_root/.cache/m2}"
bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
moto_version="5.2.5"

moto_pid=""; dynamo_pid=""; pt_pid=""; tmp="$(mktemp -d /tmp/strait-kinesis-backend.XXXXXX)"
source "$repo_root/tests/interop/lib/strait.sh"
cleanup() {
  [ -z "$moto_pid" ] || { kill "$moto_pid" 2>/dev/null; wait "$moto_pid" 2>/dev/null; }
  [ -z "$dynamo_pid" ] || { kill "$dynamo_pid" 2>/dev/null; wait "$dynamo_pid" 2>/dev/null; }
  [ -z "$pt_pid" ] || { kill "$pt_pid" 2>/dev/null; wait "$pt_pid" 2>/dev/null; }
  _strait_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=()
run() { run_part "$@"; }
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# 1. moto, with IAM authentication on after the four requests that make strait's user.
if [ ! -x "$venv/bin/moto_server" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$moto_version"
fi
wait_port() { # port, pid, log
  for _ in $(seq 1 100); do
    "$venv/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "moto_server exited:" >&2; cat "$3" >&2; exit 2; }
    sleep 0.2
  done
}
port="$(free_port)"
INITIAL_NO_AUTH_ACTION_COUNT=4 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$tmp/moto.log" 2>&1 &
moto_pid=$!
wait_port "$port" "$moto_pid" "$tmp/moto.log"
run "pass-through to moto with IAM authentication" env MOTO_ENDPOINT="http://127.0.0.1:$port" STRAIT_BIN="$bin" \
  "$venv/bin/python" "$here/checks.py"

# 2. strait's embedded backend as the upstream, and the pass-through in front of it (with TLS,
#    so the Java suite's TLS modes run too).
# As the KCL suite starts its own strait: key_check, and short subscriptions so resubscribing runs.
export KCL_SUBSCRIPTION_LIFETIME_SECS=8
start_strait kinesis-upstream STRAIT_STREAMS__KEY_CHECK=reject \
  STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS="$KCL_SUBSCRIPTION_LIFETIME_SECS" || exit 2
trap cleanup EXIT
upstream="$STRAIT_ENDPOINT"
"$bin" cert --out "$tmp/cert" --host localhost >/dev/null || exit 2
# DynamoDB for the KCL applications' lease tables (moto, no authentication), which strait
# reads and writes too for the Kafka group tied to one of them (the KCL handover scenario).
dynamo_port="$(free_port)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$dynamo_port" > "$tmp/dynamo.log" 2>&1 &
dynamo_pid=$!
wait_port "$dynamo_port" "$dynamo_pid" "$tmp/dynamo.log"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$dynamo_port"
export KCL_HANDOVER_GROUP=kcl-handover KCL_HANDOVER_TABLE=kcl-handover-app KCL_HANDOVER_STREAM=kcl-handover-stream
env STRAIT_DATA_DIR="$tmp/pt-data" STRAIT_BACKEND__TYPE=kinesis STRAIT_BACKEND__KINESIS__ENDPOINT="$upstream" \
  STRAIT_KINESIS__LISTEN=127.0.0.1:0 STRAIT_ADMIN__LISTEN=127.0.0.1:0 \
  STRAIT_KAFKA__LISTEN=127.0.0.1:0 STRAIT_KAFKA__ADVERTISED_ADDRESS=127.0.0.1:0 \
  STRAIT_KINESIS__TLS__CERT="$tmp/cert/cert.pem" STRAIT_KINESIS__TLS__KEY="$tmp/cert/key.pem" \
  STRAIT_BACKEND__KINESIS__STATE__ENDPOINT="$DYNAMODB_ENDPOINT" \
  "STRAIT_BACKEND__KINESIS__GROUPS__${KCL_HANDOVER_GROUP}__KCL_LEASE_TABLE=$KCL_HANDOVER_TABLE" \
  "STRAIT_BACKEND__KINESIS__GROUPS__${KCL_HANDOVER_GROUP}__STREAM=$KCL_HANDOVER_STREAM" \
  AWS_ACCESS_KEY_ID=strait-upstream AWS_SECRET_ACCESS_KEY=strait-upstream-secret \
  "$bin" serve --config "$repo_root/config/strait.yaml" > "$tmp/pt.out" 2> "$tmp/pt.log" &
pt_pid=$!
pt=""
for _ in $(seq 1 300); do
  pt="$(sed -n 's/^strait: kinesis listening on //p' "$tmp/pt.out" | head -1)"
  pt_kafka="$(sed -n 's/^strait: kafka listening on //p' "$tmp/pt.out" | head -1)"
  pt_admin="$(sed -n 's/^strait: admin listening on //p' "$tmp/pt.out" | head -1)"
  [ -n "$pt" ] && [ -n "$pt_kafka" ] && [ -n "$pt_admin" ] && break
  kill -0 "$pt_pid" 2>/dev/null || { echo "the pass-through strait exited:" >&2; tail -20 "$tmp/pt.log" >&2; exit 2; }
  sleep 0.1
done
[ -n "$pt" ] || { echo "the pass-through strait did not start" >&2; exit 2; }
echo "# pass-through http://$pt -> upstream $upstream; Kafka on Kinesis at $pt_kafka"
run "the pass-through's per-stream record and byte counters (PutRecords, GetRecords, SubscribeToShard)" \
  env PT_ENDPOINT="http://$pt" PT_ADMIN="$pt_admin" "$venv/bin/python" "$here/metrics.py"
export STRAIT_ENDPOINT="http://$pt" STRAIT_CA="$tmp/cert/ca.pem" STRAIT_TLS_CA="$tmp/cert/ca.pem"
export STRAIT_TLS_ENDPOINT="https://localhost:${pt##*:}"
# The AWS CLI suite (a front-end client, slow: one process per call) and the transports the pass-through does
# not tell apart run on the embedded backend only: boto3 covers JSON over HTTP/1.1, the Java SDK's three modes
# CBOR over HTTP/1.1 and h2c and JSON over TLS (h2 by ALPN).
run "boto3 suites through the pass-through" bash "$repo_root/tests/interop/python/run.sh" -q \
  -p no:cacheprovider test_boto3_acceptance.py test_boto3_ops.py test_bad_input.py test_efo.py \
  test_efo_consumers.py test_kpl_aggregation.py
run "AWS SDK for Java v2 through the pass-through (CBOR over HTTP/1.1 and h2c, JSON over TLS)" \
  bash "$repo_root/tests/interop/java/run.sh" cbor/http1 cbor/h2c json/tls
run "AWS SDK for Rust through the pass-through" bash "$repo_root/tests/interop/rust-sdk/run.sh"
# The KCL and KPL runs cross the protocols on this backend: the KCL suite's Kafka producer writes
# through strait's Kafka port on Kinesis (20,000 of its records in the basic h2c run), and the
# KPL's 20,000 records are read back by a Kafka group through it.
run "KCL 3 through the pass-through (enhanced fan-out, h2c), with Kafka producers on Kinesis (20,000 records)" \
  env STRAIT_KAFKA="$pt_kafka" KCL_MODES=h2c KCL_KAFKA_PER_ROUND=5000 bash "$repo_root/tests/interop/kcl/run.sh" \
  basic restart reshard handover
run "KPL 1 through the pass-through (TLS): 20,000 records read back by a Kafka group on Kinesis" \
  env STRAIT_ENDPOINT="$STRAIT_TLS_ENDPOINT" STRAIT_KAFKA="$pt_kafka" KPL_RECORDS=20000 bash "$repo_root/tests/interop/kpl/run.sh"

if [ ${#failures[@]} -gt 0 ]; then
  echo "# last lines of the pass-through's log:"; tail -20 "$tmp/pt.log" | sed 's/^/#   /'
  echo "# failed: ${failures[*]}"
  exit 1
fi
echo "# kinesis-backend: every check passed"
