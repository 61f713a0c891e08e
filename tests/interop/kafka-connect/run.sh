#!/usr/bin/env bash
# Kafka Connect (Apache Kafka 4.x, standalone worker) against strait's Kafka listener: a source
# connector writes records to a topic and a sink connector writes them to a file, both running in
# one worker; the worker is stopped and started again and both resume where they were (the
# source from its stored source offset, the sink from its consumer group's committed offsets).
# The connectors are this suite's own (src/), built with javac against Kafka's jars: Maven
# Central does not serve connect-file here.
#   tests/interop/kafka-connect/run.sh                       # starts $STRAIT_BIN (embedded backend)
#   STRAIT_KAFKA=127.0.0.1:9092 tests/interop/kafka-connect/run.sh   # a server you started
# Kafka's jars come from tests/interop/lib/kafka-broker.sh (into .cache/kafka-broker).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
source "$repo_root/tests/interop/lib/kafka-broker.sh"
install_kafka_broker || { echo "could not install Kafka's jars" >&2; exit 2; }
libs="$repo_root/.cache/kafka-broker/$KAFKA_VERSION/libs"

classes="$here/target/classes"
if [ ! -d "$classes" ] || [ -n "$(find "$here/src" -newer "$classes" -print -quit)" ]; then
  rm -rf "$classes"; mkdir -p "$classes"
  javac -nowarn -d "$classes" -cp "$libs/*" $(find "$here/src" -name '*.java') || exit 2
fi

source "$repo_root/tests/interop/lib/strait.sh"
if [ -z "${STRAIT_KAFKA:-}" ]; then
  start_strait kafka-connect || exit 2
fi
work="$(mktemp -d /tmp/strait-kafka-connect.XXXXXX)"; worker_pid=""
# Connectors are stopped through the REST API first (PUT /connectors/<name>/stop, KIP-875): the
# sink commits its offsets and the source stores its own. Only then is the JVM sent SIGTERM.
# Kafka Connect's shutdown hook can deadlock with Jetty's own shutdown hook (seen in CI: "Unable
# to destroy ... ShutdownThread", then nothing for an hour), so the JVM gets 20 s before SIGKILL;
# with both connectors already stopped, that loses nothing.
connector_state() { # name
  curl -s --max-time 5 "http://127.0.0.1:$port/connectors/$1/status" \
    | grep -o '"connector":{"state":"[A-Z]*"' | cut -d'"' -f6
}
stop_connectors() {
  local name deadline
  for name in counting-source "file-sink-$run_id"; do
    curl -s --max-time 10 -X PUT "http://127.0.0.1:$port/connectors/$name/stop" >/dev/null
  done
  deadline=$((SECONDS + 60))
  for name in counting-source "file-sink-$run_id"; do
    while [ "$(connector_state "$name")" != STOPPED ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    # Not stopped, the SIGKILL below could make the sink write records twice: say so as a
    # failure of its own, so such duplicates are not taken for strait's.
    [ "$(connector_state "$name")" = STOPPED ] \
      || fail "connector $name stops through the REST API" "state '$(connector_state "$name")' after 60 s"
  done
}
stop_worker() {
  [ -n "$worker_pid" ] || return 0
  kill -0 "$worker_pid" 2>/dev/null && stop_connectors
  kill "$worker_pid" 2>/dev/null
  local deadline=$((SECONDS + 20))
  while kill -0 "$worker_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if kill -0 "$worker_pid" 2>/dev/null; then
    echo "# the Connect worker did not exit within 20 s of SIGTERM (its shutdown hooks); SIGKILL"
    kill -KILL "$worker_pid" 2>/dev/null
  fi
  wait "$worker_pid" 2>/dev/null; worker_pid=""
}
trap 'stop_worker; rm -rf "$work"; _strait_stop' EXIT
run_id="$(date +%s%N | tail -c 8)"
topic="connect-$run_id"
port="$(_kb_free_port)"
passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; tail -n 20 "$work/worker.log" | sed 's/^/#     /'; }

cat > "$work/worker.properties" <<PROPS
bootstrap.servers=$STRAIT_KAFKA
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$work/source-offsets
offset.flush.interval.ms=500
listeners=http://127.0.0.1:$port
PROPS
source_props() { # count
  printf 'name=counting-source\nconnector.class=strait.connectinterop.CountingSource\ntasks.max=1\ntopic=%s\ncount=%s\nkeys=10\n' "$topic" "$1" > "$work/source.properties"
}
printf 'name=file-sink-%s\nconnector.class=strait.connectinterop.FileSink\ntasks.max=1\ntopics=%s\nfile=%s\n' \
  "$run_id" "$topic" "$work/out" > "$work/sink.properties"
start_worker() {
  java -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$repo_root/bench/kafka/log4j2-broker.properties" \
    -cp "$libs/*:$classes" org.apache.kafka.connect.cli.ConnectStandalone \
    "$work/worker.properties" "$work/source.properties" "$work/sink.properties" >> "$work/worker.log" 2>&1 &
  worker_pid=$!
}
lines() { [ -f "$work/out" ] && wc -l < "$work/out" || echo 0; }
wait_lines() { # n, seconds
  local deadline=$((SECONDS + $2))
  while [ "$(lines)" -lt "$1" ] && [ $SECONDS -lt $deadline ]; do
    kill -0 "$worker_pid" 2>/dev/null || return 1
    sleep 0.5
  done
  [ "$(lines)" -ge "$1" ]
}

echo "# Kafka Connect $KAFKA_VERSION standalone against $STRAIT_KAFKA, topic $topic"
source_props 2000
start_worker
if wait_lines 2000 120; then
  pass "a source connector's 2000 records reach the sink connector through the topic"
else
  fail "a source connector's 2000 records reach the sink connector through the topic" "the sink wrote $(lines) lines"
fi
stop_worker
source_props 3000
start_worker
if wait_lines 3000 120; then
  sleep 3  # anything written twice would show now
  pass "after a worker restart the source goes on from its stored offset and the sink from its group's commits"
else
  fail "after a worker restart the source goes on from its stored offset and the sink from its group's commits" "the sink wrote $(lines) lines"
fi
stop_worker
# Every record exactly once; per key in order; per partition, offsets rising.
bad="$(awk '{ split($4, v, "-"); n = v[2] + 0
              if (seen[n]++) { print "seq-" n " written twice"; exit }
              if (($3 in last) && n <= last[$3]) { print "key " $3 ": seq-" n " after seq-" last[$3]; exit }
              last[$3] = n
              if (($1 in off) && $2 <= off[$1]) { print "partition " $1 ": offset " $2 " after " off[$1]; exit }
              off[$1] = $2 }
            END { if (!bad) for (i = 0; i < 3000; i++) if (!(i in seen)) { print "seq-" i " missing"; exit } }' "$work/out" 2>/dev/null)"
if [ -z "$bad" ] && [ "$(lines)" -eq 3000 ]; then
  pass "3000 records, each exactly once, per-key order, offsets rising per partition"
else
  fail "3000 records, each exactly once, per-key order, offsets rising per partition" "${bad:-$(lines) lines}"
fi
strait_log_tail_on_failure "$failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
