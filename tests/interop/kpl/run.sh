#!/usr/bin/env bash
# KPL interop: the Kinesis Producer Library (aggregation on, TLS with certificate verification) writes through
# strait; a Kafka consumer group and GetRecords must read back exactly the plain user records.
#   tests/interop/kpl/run.sh    # starts $STRAIT_BIN (default target/debug/strait) with a fresh self-signed cert
#   STRAIT_ENDPOINT=https://localhost:PORT STRAIT_CA=ca.pem STRAIT_KAFKA=127.0.0.1:PORT tests/interop/kpl/run.sh
#                               # a server you started (TLS on the Kinesis port, cert trusted via STRAIT_CA)
# Knobs: KPL_RECORDS (5000), KPL_KEYS (100), KPL_SHARDS (4), KPL_LOG_LEVEL (warning; the native daemon's level).
# Dependencies go to <repo>/.cache/m2 (override with M2_REPO). Last line: "kpl-interop: N passed, M failed";
# exit status non-zero if any check failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
m2="${M2_REPO:-$repo_root/.cache/m2}"
endpoint="${STRAIT_ENDPOINT:-}"

jar="$here/target/strait-interop-kpl-0.1.0.jar"
cpfile="$here/target/classpath.txt"
# Rebuild only when a source or the pom is newer than the jar.
if [ ! -f "$jar" ] || [ ! -f "$cpfile" ] || [ -n "$(find "$here/src" "$here/pom.xml" -newer "$jar" -print -quit)" ]; then
  echo "# building (maven repo: $m2)"
  MAVEN_OPTS="${MAVEN_OPTS:--Xmx384m}" mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$m2" package
fi

source "$repo_root/tests/interop/lib/strait.sh"
if [ -z "$endpoint" ]; then
  bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
  certdir="$(mktemp -d /tmp/strait-kpl-cert.XXXXXX)"
  "$bin" cert --out "$certdir" --host localhost >/dev/null || { echo "strait cert failed" >&2; exit 2; }
  start_strait kpl-interop STRAIT_KINESIS__TLS__CERT="$certdir/cert.pem" STRAIT_KINESIS__TLS__KEY="$certdir/key.pem" \
    || exit 2
  # The KPL checks the certificate against the host name it dials, so use "localhost" (in the cert's SAN).
  endpoint="https://localhost:${STRAIT_ENDPOINT##*:}"
  export STRAIT_CA="$certdir/ca.pem"  # strait cert: ca.pem signs cert.pem; clients trust ca.pem
fi
[ -n "${STRAIT_KAFKA:-}" ] || { echo "STRAIT_KAFKA is not set" >&2; exit 2; }

mkdir -p "$here/target/kpl-tmp"  # the KPL unpacks its native daemon here (once per jar version)
log="$(mktemp)"
set +e
STRAIT_ENDPOINT="$endpoint" KPL_TEMP_DIR="$here/target/kpl-tmp" \
  java -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${KPL_JAVA_LOG_LEVEL:-warn}" \
  -cp "$jar:$(cat "$cpfile")" strait.interop.kpl.Main 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
line="$(grep -E '^kpl: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)"
if [ -n "$line" ]; then
  p="$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")"; f="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")"
else
  p=0; f=1  # the program died before its summary
fi
rm -f "$log"
[ -z "${certdir:-}" ] || rm -rf "$certdir"
rc=0; [ "$status" -eq 0 ] && [ "$f" -eq 0 ] || rc=1
strait_log_tail_on_failure "$rc"
echo "kpl-interop: $p passed, $f failed"
exit $rc
