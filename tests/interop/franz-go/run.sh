#!/usr/bin/env bash
# franz-go (github.com/twmb/franz-go) interop suite against strait's Kafka listener.
#   tests/interop/franz-go/run.sh                                 # starts $STRAIT_BIN (default <repo>/target/debug/strait)
#        with both listeners on port 0 and a temp data dir, and stops it after
#   STRAIT_KAFKA=127.0.0.1:9092 [STRAIT_KINESIS=http://127.0.0.1:4567] tests/interop/franz-go/run.sh   # a server you started
# Go modules and the build cache live under <repo>/.cache/go (GOPATH, GOMODCACHE, GOCACHE), so CI can cache them.
# FRANZ_LOG=debug|info|warn|none sets franz-go's logging (stderr). Exit status is non-zero if any check failed;
# the last line is `N passed, N failed`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
export GOPATH="$repo_root/.cache/go"
export GOMODCACHE="$GOPATH/mod" GOCACHE="$GOPATH/build" GOFLAGS=-mod=mod GOTOOLCHAIN=local
client="$GOPATH/bin/strait-interop-franzgo"

# Rebuild only when a source file or go.mod/go.sum is newer than the binary.
if [ ! -x "$client" ] || [ -n "$(find "$here" -maxdepth 1 \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -newer "$client" -print -quit)" ]; then
  echo "# building franz-go client (GOPATH $GOPATH)"
  (cd "$here" && go build -o "$client" .)
fi

server_pid=""; data_dir=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$data_dir" ]; then rm -rf "$data_dir"; fi
}
trap cleanup EXIT
kafka="${STRAIT_KAFKA:-}"
kinesis="${STRAIT_KINESIS:-}"
if [ -z "$kafka" ]; then
  bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
  [ -x "$bin" ] || { echo "no STRAIT_KAFKA and no strait binary at $bin" >&2; exit 2; }
  data_dir="$(mktemp -d /tmp/strait-franzgo-interop.XXXXXX)"
  cfg=(); [ -f "$repo_root/config/strait.yaml" ] && cfg=(--config "$repo_root/config/strait.yaml")
  STRAIT_DATA_DIR="$data_dir" STRAIT_KINESIS__LISTEN=127.0.0.1:0 STRAIT_KAFKA__LISTEN=127.0.0.1:0 \
    STRAIT_KAFKA__ADVERTISED_ADDRESS=127.0.0.1:0 STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS=300 \
    "$bin" serve "${cfg[@]}" > "$data_dir.out" 2> "$data_dir.log" &
  server_pid=$!
  for _ in $(seq 1 300); do
    kafka="$(sed -n 's/^strait: kafka listening on //p' "$data_dir.out" | head -1)"
    kinesis_addr="$(sed -n 's/^strait: kinesis listening on //p' "$data_dir.out" | head -1)"
    [ -n "$kafka" ] && [ -n "$kinesis_addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "strait exited early:" >&2; tail -20 "$data_dir.log" >&2; exit 2; }
    sleep 0.1
  done
  [ -n "$kafka" ] || { echo "strait did not print its kafka port" >&2; cat "$data_dir.out" >&2; exit 2; }
  kinesis="http://$kinesis_addr"
  echo "# started $bin (pid $server_pid): kafka $kafka, kinesis $kinesis, data $data_dir, log $data_dir.log"
fi

out="$(mktemp /tmp/strait-franzgo-out.XXXXXX)"
set +e
STRAIT_KAFKA="$kafka" STRAIT_KINESIS="$kinesis" "$client" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
rm -f "$out"
if [ "$rc" -ne 0 ] && [ -n "$server_pid" ]; then
  echo "# last lines of the strait log ($data_dir.log):"
  tail -30 "$data_dir.log" | sed 's/^/#   /'
  # Repeat the client's summary so it stays the last line.
  echo "${summary:-0 passed, 1 failed}"
fi
[ "$rc" -ne 0 ] || [ -z "$data_dir" ] || rm -f "$data_dir.log" "$data_dir.out"
exit $rc
