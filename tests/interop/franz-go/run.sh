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

source "$repo_root/tests/interop/lib/strait.sh"
kafka="${STRAIT_KAFKA:-}"
kinesis="${STRAIT_KINESIS:-}"
if [ -z "$kafka" ]; then
  start_strait franzgo-interop || exit 2
  kafka="$STRAIT_KAFKA"
  kinesis="$STRAIT_ENDPOINT"
fi

out="$(mktemp /tmp/strait-franzgo-out.XXXXXX)"
set +e
STRAIT_KAFKA="$kafka" STRAIT_KINESIS="$kinesis" "$client" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
rm -f "$out"
strait_log_tail_on_failure "$rc"
# Keep the summary the last line, after any log tail.
[ "$rc" -eq 0 ] || [ -z "$summary" ] || echo "$summary"
exit $rc
