#!/usr/bin/env bash
# AWS SDK for Rust (aws-sdk-kinesis) interop suite against strait (or any Kinesis endpoint).
#   STRAIT_ENDPOINT=http://127.0.0.1:4567 tests/interop/rust-sdk/run.sh   # a server you started
#   tests/interop/rust-sdk/run.sh                                         # no STRAIT_ENDPOINT: starts $STRAIT_BIN
#        (default <repo>/target/debug/strait) on a free loopback port with a temp data dir, and stops it after
# Builds with cargo (debug profile; CARGO_TARGET_DIR defaults to <repo>/target/interop-rust-sdk, so nothing is
# shared with the main build and the result is cached between runs). Set CARGO_NET_OFFLINE=true to build offline
# once the crates are in ~/.cargo. RUST_SDK_INTEROP_TRACE=1 prints every request/response pair. Exit status is non-zero if any check failed; the last line is `N passed, N failed`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_root/target/interop-rust-sdk}"
endpoint="${STRAIT_ENDPOINT:-}"

echo "# building (target dir $CARGO_TARGET_DIR)"
cargo build --locked --manifest-path "$here/Cargo.toml" --quiet
client="$CARGO_TARGET_DIR/debug/strait-interop-rust-sdk"

server_pid=""; data_dir=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$data_dir" ]; then rm -rf "$data_dir"; fi
}
trap cleanup EXIT
if [ -z "$endpoint" ]; then
  bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
  [ -x "$bin" ] || { echo "no STRAIT_ENDPOINT and no strait binary at $bin" >&2; exit 2; }
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  data_dir="$(mktemp -d /tmp/strait-rust-sdk-interop.XXXXXX)"
  cfg=(); [ -f "$repo_root/config/strait.yaml" ] && cfg=(--config "$repo_root/config/strait.yaml")
  STRAIT_DATA_DIR="$data_dir" STRAIT_KINESIS__LISTEN="127.0.0.1:$port" STRAIT_KAFKA__LISTEN="" \
    "$bin" serve "${cfg[@]}" > "$data_dir.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { echo "strait exited early:" >&2; tail -20 "$data_dir.log" >&2; exit 2; }
    sleep 0.1
  done
  endpoint="http://127.0.0.1:$port"
  echo "# started $bin (pid $server_pid) on $endpoint, data $data_dir, log $data_dir.log"
fi

set +e
STRAIT_ENDPOINT="$endpoint" "$client"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ -n "$server_pid" ]; then
  echo "# last lines of the strait log ($data_dir.log):"
  tail -30 "$data_dir.log" | sed 's/^/#   /'
fi
[ "$rc" -ne 0 ] || [ -z "$data_dir" ] || rm -f "$data_dir.log"
exit $rc
