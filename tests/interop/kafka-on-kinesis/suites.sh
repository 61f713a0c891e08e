#!/usr/bin/env bash
# The Kafka client suites strait runs on its embedded backend (Apache Kafka's Java clients and
# kafka-consumer-groups, franz-go, kcat, Kafka Connect), run again with backend.type kinesis: a strait reading
# by enhanced fan-out in front of strait's embedded backend as the upstream (the only upstream
# with enhanced fan-out; no throttling, so the suites' 10,000-record runs take seconds).
# STRAIT_BACKEND=kinesis tells each suite which checks need what Kinesis cannot do; those are
# skipped with the reason printed (records carry arrival times, partitions are shards, a Kinesis
# PutRecord is routed by MD5).
#   tests/interop/kafka-on-kinesis/suites.sh [kafka-java franz-go kcat kafka-connect]
# Caches: .cache/m2 (M2_REPO), .cache/go.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
export M2_REPO="${M2_REPO:-$repo_root/.cache/m2}"
suites=("$@"); [ ${#suites[@]} -gt 0 ] || suites=(kafka-java franz-go kcat kafka-connect)

tmp="$(mktemp -d /tmp/strait-kafka-suites-on-kinesis.XXXXXX)"; front_pid=""
source "$repo_root/tests/interop/lib/strait.sh"
cleanup() {
  if [ -n "$front_pid" ]; then kill -CONT "$front_pid" 2>/dev/null; kill "$front_pid" 2>/dev/null; wait "$front_pid" 2>/dev/null; fi
  _strait_stop
  rm -rf "$tmp"
}
trap cleanup EXIT

start_strait kafka-suites-upstream || exit 2
trap cleanup EXIT
upstream="$STRAIT_ENDPOINT"
env STRAIT_DATA_DIR="$tmp/front" STRAIT_BACKEND__TYPE=kinesis STRAIT_BACKEND__KINESIS__ENDPOINT="$upstream" \
  STRAIT_BACKEND__KINESIS__READ=fan-out \
  STRAIT_KINESIS__LISTEN=127.0.0.1:0 STRAIT_ADMIN__LISTEN=127.0.0.1:0 \
  STRAIT_KAFKA__LISTEN=127.0.0.1:0 STRAIT_KAFKA__ADVERTISED_ADDRESS=127.0.0.1:0 \
  STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS=300 \
  AWS_ACCESS_KEY_ID=strait-upstream AWS_SECRET_ACCESS_KEY=strait-upstream-secret RUST_LOG=warn \
  "$bin" serve --config "$repo_root/config/strait.yaml" > "$tmp/front.out" 2> "$tmp/front.log" &
front_pid=$!
kinesis="" kafka=""
for _ in $(seq 1 300); do
  kinesis="$(sed -n 's/^strait: kinesis listening on //p' "$tmp/front.out" | head -1)"
  kafka="$(sed -n 's/^strait: kafka listening on //p' "$tmp/front.out" | head -1)"
  [ -n "$kinesis" ] && [ -n "$kafka" ] && break
  kill -0 "$front_pid" 2>/dev/null || { echo "strait (backend kinesis) exited:" >&2; tail -20 "$tmp/front.log" >&2; exit 2; }
  sleep 0.1
done
[ -n "$kafka" ] || { echo "strait (backend kinesis) did not start" >&2; exit 2; }
echo "# Kafka on Kinesis at $kafka (Kinesis pass-through http://$kinesis) -> upstream $upstream"

# The suites reach strait's Kinesis port too: on this backend that is the pass-through.
export STRAIT_BACKEND=kinesis STRAIT_KAFKA="$kafka" STRAIT_ENDPOINT="http://$kinesis" STRAIT_KINESIS="http://$kinesis"
export STRAIT_PID="$front_pid"
failures=()
for s in "${suites[@]}"; do
  echo "## $s on backend.type kinesis"
  case "$s" in
    kafka-java) bash "$repo_root/tests/interop/kafka-java/run.sh" ;;
    franz-go) bash "$repo_root/tests/interop/franz-go/run.sh" ;;
    kcat) bash "$repo_root/tests/interop/kcat/run.sh" ;;
    kafka-connect) bash "$repo_root/tests/interop/kafka-connect/run.sh" ;;
    *) echo "unknown suite $s" >&2; false ;;
  esac || failures+=("$s")
done
if [ ${#failures[@]} -gt 0 ]; then
  echo "# last lines of strait's log (backend kinesis):"; tail -20 "$tmp/front.log" | sed 's/^/#   /'
  echo "# Kafka suites on Kinesis failed: ${failures[*]}"
  exit 1
fi
echo "# Kafka suites on Kinesis: ${suites[*]} passed"
