#!/usr/bin/env bash
# KCL 3.x (enhanced fan-out) interop suite against strait, with DynamoDB served by moto.
#   tests/interop/kcl/run.sh [basic|restart|reshard ...]     # default: all three scenarios
# STRAIT_ENDPOINT (+ STRAIT_KAFKA) set: use that server; otherwise start $STRAIT_BIN (default
# target/debug/strait) on free loopback ports with streams.key_check=reject, and stop it after.
# DYNAMODB_ENDPOINT set: use that DynamoDB; otherwise start moto_server (from <repo>/.cache/venv, installed
# there on first use) on a free loopback port. KCL_RETRIEVAL=polling swaps fan-out for GetRecords polling
# (only to tell harness problems from fan-out problems; the suite's mode is fanout).
# Dependencies go to <repo>/.cache/m2 (override with M2_REPO). Exit status is non-zero if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
m2="${M2_REPO:-$repo_root/.cache/m2}"
venv="$repo_root/.cache/venv"
moto_version="5.2.5"

jar="$here/target/strait-interop-kcl-0.1.0.jar"
cpfile="$here/target/classpath.txt"
# Rebuild only when a source or the pom is newer than the jar.
if [ ! -f "$jar" ] || [ ! -f "$cpfile" ] || [ -n "$(find "$here/src" "$here/pom.xml" -newer "$jar" -print -quit)" ]; then
  echo "# building (maven repo: $m2)"
  MAVEN_OPTS="${MAVEN_OPTS:--Xmx384m}" mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$m2" package
fi

moto_pid=""; moto_log=""
stop_moto() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  if [ -n "$moto_log" ]; then rm -f "$moto_log"; fi
}

if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "# installing moto[server]==$moto_version into $venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "moto[server]==$moto_version"
  fi
  port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  moto_log="$(mktemp /tmp/kcl-moto.XXXXXX.log)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$moto_log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 100); do
    if "$venv/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then break; fi
    kill -0 "$moto_pid" 2>/dev/null || { echo "moto_server exited:" >&2; cat "$moto_log" >&2; exit 2; }
    sleep 0.2
  done
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
  echo "# started moto_server (pid $moto_pid) at $DYNAMODB_ENDPOINT"
fi

source "$repo_root/tests/interop/lib/strait.sh"
if [ -z "${STRAIT_ENDPOINT:-}" ]; then
  start_strait kcl-interop STRAIT_STREAMS__KEY_CHECK=reject ${STRAIT_EXTRA_ENV:-} || exit 2
fi
# strait.sh's EXIT trap stops strait; chain moto's stop to it.
trap 'stop_moto; _strait_stop' EXIT

log="$(mktemp)"
set +e
java -Xmx512m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Daws.disableEc2Metadata=true \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${KCL_LOG_LEVEL:-warn}" -Dorg.slf4j.simpleLogger.showDateTime=true \
  -cp "$jar:$(cat "$cpfile")" strait.kclinterop.Main "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
line="$(grep -E '^kcl-app: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)"
rm -f "$log"
if [ -n "$line" ]; then
  p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
else
  p=0; f=1  # the program died before its summary
fi
rc=0; [ "$status" -eq 0 ] && [ "$f" -eq 0 ] || rc=1
strait_log_tail_on_failure "$rc"
echo "kcl-interop: $p passed, $f failed"
exit $rc
