# Sourced by the interop suites' run.sh: starts strait for one suite and stops it afterwards.
#
#   source "$repo_root/tests/interop/lib/strait.sh"
#   start_strait NAME [ENV=VALUE ...]   # unless the caller already points at a server
#   ...run the client against $STRAIT_ENDPOINT (Kinesis) and/or $STRAIT_KAFKA (Kafka)...
#   strait_log_tail_on_failure RC
#
# start_strait runs $STRAIT_BIN (default <repo>/target/debug/strait) with config/strait.yaml, a
# fresh temp data dir and both listeners on port 0, reads the ports strait prints, and exports
# STRAIT_ENDPOINT=http://host:port, STRAIT_KAFKA=host:port, STRAIT_PID and STRAIT_SERVER_LOG. An EXIT
# trap stops it (SIGCONT first, in case a suite paused it) and removes the data dir.

_strait_lib_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
_strait_pid=""
_strait_data=""

_strait_stop() {
  if [ -n "$_strait_pid" ]; then
    kill -CONT "$_strait_pid" 2>/dev/null || true
    kill "$_strait_pid" 2>/dev/null || true
    wait "$_strait_pid" 2>/dev/null || true
  fi
  if [ -n "$_strait_data" ]; then rm -rf "$_strait_data" "$_strait_data.out"; fi
}

start_strait() {
  local name="$1"; shift
  local bin="${STRAIT_BIN:-$_strait_lib_root/target/debug/strait}"
  [ -x "$bin" ] || { echo "no strait binary at $bin (cargo build first)" >&2; return 2; }
  _strait_data="$(mktemp -d "/tmp/strait-$name.XXXXXX")"
  trap _strait_stop EXIT
  env STRAIT_DATA_DIR="$_strait_data" STRAIT_KINESIS__LISTEN=127.0.0.1:0 \
    STRAIT_KAFKA__LISTEN=127.0.0.1:0 STRAIT_KAFKA__ADVERTISED_ADDRESS=127.0.0.1:0 \
    STRAIT_ADMIN__LISTEN=127.0.0.1:0 \
    STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS=300 "$@" \
    "$bin" serve --config "$_strait_lib_root/config/strait.yaml" \
    > "$_strait_data.out" 2> "$_strait_data.log" &
  _strait_pid=$!
  local kinesis="" kafka=""
  for _ in $(seq 1 300); do
    kinesis="$(sed -n 's/^strait: kinesis listening on //p' "$_strait_data.out" | head -1)"
    kafka="$(sed -n 's/^strait: kafka listening on //p' "$_strait_data.out" | head -1)"
    [ -n "$kinesis" ] && [ -n "$kafka" ] && break
    if ! kill -0 "$_strait_pid" 2>/dev/null; then
      echo "strait exited early:" >&2; tail -20 "$_strait_data.log" >&2; return 2
    fi
    sleep 0.1
  done
  [ -n "$kinesis" ] && [ -n "$kafka" ] || { echo "strait did not print its ports" >&2; return 2; }
  STRAIT_ENDPOINT="http://$kinesis"
  export STRAIT_ENDPOINT STRAIT_KAFKA="$kafka" STRAIT_PID="$_strait_pid"
  export STRAIT_SERVER_LOG="$_strait_data.log"
  STRAIT_ADMIN="$(sed -n 's/^strait: admin listening on //p' "$_strait_data.out" | head -1)"
  export STRAIT_ADMIN
  echo "# started $bin (pid $_strait_pid): kinesis $STRAIT_ENDPOINT, kafka $STRAIT_KAFKA, log $STRAIT_SERVER_LOG"
}

# Shows the end of strait's log when the suite failed; removes the log when it passed.
strait_log_tail_on_failure() {
  local rc="$1"
  [ -n "$_strait_pid" ] || return 0
  if [ "$rc" -ne 0 ]; then
    echo "# last lines of the strait log ($STRAIT_SERVER_LOG):"
    tail -30 "$STRAIT_SERVER_LOG" | sed 's/^/#   /'
  else
    rm -f "$STRAIT_SERVER_LOG"
  fi
}

# One part of a multi-part suite: prints "## NAME", runs the command, adds NAME to the caller's
# `failures` array when it fails, and prints how long the part took, so a suite's log shows where
# CI's time goes.
run_part() { # name, command...
  local name="$1" start=$SECONDS rc; shift
  echo "## $name"
  "$@"; rc=$?
  [ $rc -eq 0 ] || failures+=("$name")
  echo "## $name: $((SECONDS - start)) s"
}
