#!/usr/bin/env bash
# AWS SDK for Java v2 interop suite against strait (or any Kinesis endpoint).
#   STRAIT_ENDPOINT=http://127.0.0.1:4567 tests/interop/java/run.sh [mode...]   # a server you started
#   tests/interop/java/run.sh [mode...]   # no STRAIT_ENDPOINT: starts $STRAIT_BIN (default target/debug/strait)
#                                         # on a free loopback port with a temp data dir, and stops it after
# Modes: cbor/http1 json/http1 cbor/h2c json/h2c cbor/tls json/tls (default: all six; the tls ones only with a cert).
#   tls = the async Netty client over HTTPS with ALPN h2 (https://localhost:PORT, trusting strait's self-signed
#   cert). When run.sh starts strait itself it makes the cert with `strait cert` and enables TLS on the Kinesis
#   port (which keeps serving plain HTTP/1.1 and h2c too). Against your own server set STRAIT_CA to the PEM
#   that signs its cert (ca.pem from `strait cert`), and STRAIT_TLS_ENDPOINT if it is not
#   https://localhost:<port of STRAIT_ENDPOINT>.
# h2c and tls modes also run the enhanced fan-out checks (Efo.java).
# Dependencies go to <repo>/.cache/m2 (override with M2_REPO). Exit status is non-zero if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
m2="${M2_REPO:-$repo_root/.cache/m2}"
endpoint="${STRAIT_ENDPOINT:-}"
modes=("$@")
if [ ${#modes[@]} -eq 0 ]; then
  modes=(cbor/http1 json/http1 cbor/h2c json/h2c)
  # tls needs a certificate: ours when run.sh starts strait, STRAIT_CA for a server you started
  if [ -z "$endpoint" ] || [ -n "${STRAIT_CA:-}" ]; then
    modes+=(cbor/tls json/tls)
  else
    echo "# tls modes skipped: set STRAIT_CA to the PEM that signs your server's certificate"
  fi
fi
want_tls=false
for m in "${modes[@]}"; do [ "${m##*/}" = tls ] && want_tls=true; done

jar="$here/target/strait-interop-java-0.1.0.jar"
cpfile="$here/target/classpath.txt"
# Rebuild only when a source or the pom is newer than the jar.
if [ ! -f "$jar" ] || [ ! -f "$cpfile" ] || [ -n "$(find "$here/src" "$here/pom.xml" -newer "$jar" -print -quit)" ]; then
  echo "# building (maven repo: $m2)"
  MAVEN_OPTS="${MAVEN_OPTS:--Xmx384m}" mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$m2" package
fi

source "$repo_root/tests/interop/lib/strait.sh"
certdir=""
if [ -z "$endpoint" ]; then
  tls_env=()
  if $want_tls; then
    certdir="$(mktemp -d /tmp/strait-java-cert.XXXXXX)"
    "${STRAIT_BIN:-$repo_root/target/debug/strait}" cert --out "$certdir" --host localhost >/dev/null \
      || { echo "strait cert failed (needed for the tls modes)" >&2; exit 2; }
    export STRAIT_CA="$certdir/ca.pem"  # strait cert: ca.pem signs cert.pem; clients trust ca.pem
    tls_env=(STRAIT_KINESIS__TLS__CERT="$certdir/cert.pem" STRAIT_KINESIS__TLS__KEY="$certdir/key.pem")
  fi
  start_strait java-interop "${tls_env[@]}" || exit 2
  endpoint="$STRAIT_ENDPOINT"
fi
if $want_tls; then
  [ -n "${STRAIT_CA:-}" ] || { echo "tls modes need STRAIT_CA (the server's certificate, PEM)" >&2; exit 2; }
  export STRAIT_TLS_ENDPOINT="${STRAIT_TLS_ENDPOINT:-https://localhost:${endpoint##*:}}"
fi

total_pass=0; total_fail=0; rc=0
for mode in "${modes[@]}"; do
  enc="${mode%%/*}"; transport="${mode##*/}"
  case "$enc" in cbor) cbor=true ;; json) cbor=false ;; *) echo "bad mode $mode" >&2; exit 2 ;; esac
  log="$(mktemp)"
  set +e
  STRAIT_ENDPOINT="$endpoint" java -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Daws.cborEnabled="$cbor" -cp "$jar:$(cat "$cpfile")" strait.interop.Main "$transport" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  line="$(grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)"
  if [ -n "$line" ]; then
    p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  else
    total_fail=$((total_fail + 1))  # the program died before its summary
  fi
  [ "$status" -eq 0 ] || rc=1
  rm -f "$log"
done
[ -z "$certdir" ] || rm -rf "$certdir"
strait_log_tail_on_failure "$rc"
echo "java-interop: $total_pass passed, $total_fail failed"
exit $rc
