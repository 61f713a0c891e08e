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

source "$repo_root/tests/interop/lib/strait.sh"
if [ -z "${STRAIT_KAFKA:-}" ]; then
  start_strait kafka-java || exit 2
fi

set +e
java -Xmx256m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${KAFKA_JAVA_LOG:-warn}" \
  -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
  -cp "$jar:$(cat "$cpfile")" strait.kafkainterop.Main
rc=$?
set -e
strait_log_tail_on_failure "$rc"
exit $rc
