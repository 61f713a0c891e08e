#!/usr/bin/env bash
# Apache Kafka Java clients (4.x) + kafka-consumer-groups interop suite against strait's Kafka listener.
#   STRAIT_KAFKA=127.0.0.1:9092 STRAIT_ENDPOINT=http://127.0.0.1:4567 tests/interop/kafka-java/run.sh
#       a server you started (STRAIT_PID=<its pid> also enables the check that pauses it with SIGSTOP)
#   tests/interop/kafka-java/run.sh
#       no STRAIT_KAFKA: starts $STRAIT_BIN (default target/debug/strait) with both listeners on port 0,
#       a temp data dir and a 300 ms initial rebalance delay, and stops it afterwards
# Dependencies go to <repo>/.cache/m2 (override with M2_REPO). Exit status is non-zero if any check failed.
# KAFKA_JAVA_STACKS=true prints stack traces of unexpected exceptions; KAFKA_JAVA_LOG=info|debug raises
# the clients' log level (default warn, on stderr).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
m2="${M2_REPO:-$repo_root/.cache/m2}"

jar="$here/target/strait-interop-kafka-java-0.1.0.jar"
cpfile="$here/target/classpath.txt"
# Rebuild only when a source or the pom is newer than the jar.
if [ ! -f "$jar" ] || [ ! -f "$cpfile" ] || [ -n "$(find "$here/src" "$here/pom.xml" -newer "$jar" -print -quit)" ]; then
  echo "# building (maven repo: $m2)"
  MAVEN_OPTS="${MAVEN_OPTS:--Xmx384m}" mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$m2" package
fi

server_pid=""; data_dir=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -CONT "$server_pid" 2>/dev/null || true   # in case the run died while strait was paused
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$data_dir" ]; then rm -rf "$data_dir" "$data_dir.out" "$data_dir.log"; fi
}
trap cleanup EXIT

if [ -z "${STRAIT_KAFKA:-}" ]; then
  bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"
  [ -x "$bin" ] || { echo "no STRAIT_KAFKA and no strait binary at $bin" >&2; exit 2; }
  data_dir="$(mktemp -d /tmp/strait-kafka-java.XXXXXX)"
  cfg=(); [ -f "$repo_root/config/strait.yaml" ] && cfg=(--config "$repo_root/config/strait.yaml")
  STRAIT_DATA_DIR="$data_dir" \
  STRAIT_KINESIS__LISTEN=127.0.0.1:0 \
  STRAIT_KAFKA__LISTEN=127.0.0.1:0 \
  STRAIT_KAFKA__ADVERTISED_ADDRESS=127.0.0.1:0 \
  STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS=300 \
    "$bin" serve "${cfg[@]}" > "$data_dir.out" 2> "$data_dir.log" &
  server_pid=$!
  kin=""; kaf=""
  for _ in $(seq 1 300); do
    kin="$(sed -nE 's/^strait: kinesis listening on ([0-9.]+:[0-9]+).*/\1/p' "$data_dir.out" | head -1)"
    kaf="$(sed -nE 's/^strait: kafka listening on ([0-9.]+:[0-9]+).*/\1/p' "$data_dir.out" | head -1)"
    [ -n "$kin" ] && [ -n "$kaf" ] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "strait exited early:" >&2; tail -20 "$data_dir.log" >&2; exit 2; }
    sleep 0.1
  done
  [ -n "$kin" ] && [ -n "$kaf" ] || { echo "strait did not print its listening ports:" >&2; cat "$data_dir.out" >&2; exit 2; }
  export STRAIT_KAFKA="$kaf" STRAIT_ENDPOINT="http://$kin" STRAIT_PID="$server_pid"
  echo "# started $bin (pid $server_pid): kafka $kaf, kinesis $kin, data $data_dir, log $data_dir.log"
fi

set +e
java -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${KAFKA_JAVA_LOG:-warn}" \
  -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
  -cp "$jar:$(cat "$cpfile")" strait.kafkainterop.Main
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ -n "$server_pid" ]; then
  echo "# last lines of the strait log ($data_dir.log):"
  tail -30 "$data_dir.log" | sed 's/^/#   /'
  cp "$data_dir.log" "/tmp/strait-kafka-java-last.log" 2>/dev/null && echo "# full log kept at /tmp/strait-kafka-java-last.log"
fi
exit $rc
