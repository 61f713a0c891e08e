#!/usr/bin/env bash
# KCL 3.x (enhanced fan-out) interop suite against strait, with DynamoDB served by moto.
#   tests/interop/kcl/run.sh [basic|restart|reshard ...]
# Passes (KCL_MODES, default "h2c tls"): h2c runs the given scenarios (default all three) over plain HTTP/2;
# tls runs them (default: basic only) over https://localhost with ALPN, trusting the CA from `strait cert`.
# STRAIT_ENDPOINT (+ STRAIT_KAFKA) set: use that server (tls pass skipped unless STRAIT_TLS_ENDPOINT and
# STRAIT_TLS_CA are set too); otherwise start $STRAIT_BIN (default target/debug/strait) on free loopback ports with
# streams.key_check=reject, a TLS certificate and kinesis.subscription_lifetime_secs=$KCL_SUBSCRIPTION_LIFETIME_SECS
# (default 8, so KCL has to renew its subscriptions), and stop it after.
# DYNAMODB_ENDPOINT set: use that DynamoDB; otherwise start moto_server (from <repo>/.cache/venv, installed
# there on first use) on a free loopback port. KCL_RETRIEVAL=polling swaps fan-out for GetRecords polling
# (only to tell harness problems from fan-out problems; the suite's mode is fanout). KCL_LOG_LEVEL=info shows
# KCL's own log.
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
tls_dir=""
# One EXIT trap for everything this script starts (start_strait sets its own; it is replaced below).
trap 'stop_moto; _strait_stop; [ -z "$tls_dir" ] || rm -rf "$tls_dir"' EXIT
if [ -z "${STRAIT_ENDPOINT:-}" ]; then
  export KCL_SUBSCRIPTION_LIFETIME_SECS="${KCL_SUBSCRIPTION_LIFETIME_SECS:-8}"
  tls_dir="$(mktemp -d /tmp/kcl-tls.XXXXXX)"
  "${STRAIT_BIN:-$repo_root/target/debug/strait}" cert --out "$tls_dir" --host localhost > /dev/null
  start_strait kcl-interop STRAIT_STREAMS__KEY_CHECK=reject \
    STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS="$KCL_SUBSCRIPTION_LIFETIME_SECS" \
    STRAIT_KINESIS__TLS__CERT="$tls_dir/cert.pem" STRAIT_KINESIS__TLS__KEY="$tls_dir/key.pem" || { stop_moto; exit 2; }
  export STRAIT_TLS_ENDPOINT="https://localhost:${STRAIT_ENDPOINT##*:}" STRAIT_TLS_CA="$tls_dir/ca.pem"
fi
# strait.sh's EXIT trap stops strait; chain moto's stop and the certificate's removal to it.
trap 'stop_moto; _strait_stop; [ -z "$tls_dir" ] || rm -rf "$tls_dir"' EXIT

modes="${KCL_MODES:-h2c tls}"
total_pass=0; total_fail=0; rc=0
for mode in $modes; do
  endpoint="$STRAIT_ENDPOINT"; jvm_tls=(); scenarios=("$@")
  case "$mode" in
    h2c) ;;
    tls)
      if [ -z "${STRAIT_TLS_ENDPOINT:-}" ] || [ -z "${STRAIT_TLS_CA:-}" ]; then
        echo "# tls pass skipped: STRAIT_TLS_ENDPOINT / STRAIT_TLS_CA not set"; continue
      fi
      endpoint="$STRAIT_TLS_ENDPOINT"
      store="$(mktemp -u /tmp/kcl-truststore.XXXXXX.p12)"
      keytool -importcert -noprompt -alias strait-ca -file "$STRAIT_TLS_CA" -keystore "$store" \
        -storetype PKCS12 -storepass changeit > /dev/null
      jvm_tls=(-Djavax.net.ssl.trustStore="$store" -Djavax.net.ssl.trustStorePassword=changeit -Djavax.net.ssl.trustStoreType=PKCS12)
      [ ${#scenarios[@]} -gt 0 ] || scenarios=(basic)
      ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "# ---- pass $mode: ${scenarios[*]:-basic restart reshard} against $endpoint"
  log="$(mktemp)"
  set +e
  STRAIT_ENDPOINT="$endpoint" java -Xmx512m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Daws.disableEc2Metadata=true \
    "${jvm_tls[@]}" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${KCL_LOG_LEVEL:-warn}" -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.log.software.amazon.kinesis.lifecycle.ProcessTask=error \
    -cp "$jar:$(cat "$cpfile")" strait.kclinterop.Main "${scenarios[@]}" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  line="$(grep -E '^kcl-app: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)"
  rm -f "$log"
  [ "$mode" != tls ] || rm -f "$store"
  if [ -n "$line" ]; then
    p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
  else
    p=0; f=1  # the program died before its summary
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  [ "$status" -eq 0 ] && [ "$f" -eq 0 ] || rc=1
done
strait_log_tail_on_failure "$rc"
echo "kcl-interop: $total_pass passed, $total_fail failed"
exit $rc
