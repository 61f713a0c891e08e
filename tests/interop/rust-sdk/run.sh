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

source "$repo_root/tests/interop/lib/strait.sh"
if [ -z "$endpoint" ]; then
  start_strait rust-sdk-interop || exit 2
  endpoint="$STRAIT_ENDPOINT"
fi

set +e
STRAIT_ENDPOINT="$endpoint" "$client"
rc=$?
set -e
strait_log_tail_on_failure "$rc"
exit $rc
