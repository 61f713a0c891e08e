# Sourced by suites and benchmarks that need a real Apache Kafka broker.
#
#   source "$repo_root/tests/interop/lib/kafka-broker.sh"
#   install_kafka_broker              # jars from Maven Central into .cache/kafka-broker/<version>/libs
#   start_kafka_broker NAME           # single-node KRaft (broker + controller) on free ports
#   ...use $KAFKA_BOOTSTRAP...
#   stop_kafka_broker                 # also safe to call twice; callers put it in their EXIT trap
#
# KAFKA_VERSION (default 4.4.0) picks the version; the local Maven repository is .cache/m2 (M2_REPO
# overrides it). start_kafka_broker exports KAFKA_BOOTSTRAP, KAFKA_BROKER_PID, KAFKA_BROKER_LOG and
# KAFKA_BROKER_PROPS; restart_kafka_broker stops it with SIGKILL and starts it again on the same ports
# and data, for fault tests.

_kb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_LIBS="$_kb_root/.cache/kafka-broker/$KAFKA_VERSION/libs"
_kb_dir=""
KAFKA_BROKER_PID=""

install_kafka_broker() {
  local dest="$_kb_root/.cache/kafka-broker/$KAFKA_VERSION" pom="$_kb_root/bench/kafka/pom.xml"
  local want stamp="$dest/.installed"
  want="$KAFKA_VERSION $(sha1sum "$pom" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
     && compgen -G "$dest/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
     && compgen -G "$dest/libs/kafka-tools-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  echo "# resolving Apache Kafka $KAFKA_VERSION (kafka_2.13 + kafka-tools) from Maven Central into $dest/libs" >&2
  rm -rf "$dest/libs.tmp"
  mkdir -p "$dest"
  (cd "$_kb_root/bench/kafka" && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="${M2_REPO:-$_kb_root/.cache/m2}" \
      -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies -DoutputDirectory="$dest/libs.tmp") || return 1
  rm -rf "$dest/libs"
  mv "$dest/libs.tmp" "$dest/libs"
  echo "$want" > "$stamp"
}

_kb_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# A bootstrap port P for strait's pass-through whose broker port for node 1 (P + 2) is free too.
free_pass_through_port() {
  python3 - <<'PY'
import socket
for _ in range(50):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 2)); t.close(); s.close(); print(p); break
    except OSError:
        s.close(); t.close()
PY
}

_kb_launch() {
  java -Xmx512m -Xms512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-broker.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_BROKER_PROPS" >> "$KAFKA_BROKER_LOG" 2>&1 &
  KAFKA_BROKER_PID=$!
  export KAFKA_BROKER_PID
  local _
  for _ in $(seq 1 600); do
    if grep -q "Kafka Server started" "$KAFKA_BROKER_LOG" 2>/dev/null; then return 0; fi
    if ! kill -0 "$KAFKA_BROKER_PID" 2>/dev/null; then
      echo "the Kafka broker exited:" >&2; tail -20 "$KAFKA_BROKER_LOG" >&2; return 1
    fi
    sleep 0.1
  done
  echo "the Kafka broker did not start in 60 s" >&2; tail -20 "$KAFKA_BROKER_LOG" >&2; return 1
}

start_kafka_broker() {
  local name="$1" port cport cluster_id
  install_kafka_broker || return 1
  _kb_dir="$(mktemp -d "/tmp/kafka-$name.XXXXXX")"
  port="$(_kb_free_port)"; cport="$(_kb_free_port)"
  KAFKA_BROKER_PROPS="$_kb_dir/server.properties"
  KAFKA_BROKER_LOG="$_kb_dir/broker.log"
  export KAFKA_BROKER_PROPS KAFKA_BROKER_LOG
  cat > "$KAFKA_BROKER_PROPS" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$_kb_dir/data
# strait's default_shard_count, so suites written for either see the same auto-created topics.
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=300
EOF
  cluster_id="$(java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-tools.properties" \
      kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-tools.properties" \
    kafka.tools.StorageTool format --cluster-id="$cluster_id" --config "$KAFKA_BROKER_PROPS" \
    >> "$KAFKA_BROKER_LOG" 2>&1 || { echo "kafka storage format failed" >&2; tail -20 "$KAFKA_BROKER_LOG" >&2; return 1; }
  _kb_launch || return 1
  KAFKA_BOOTSTRAP="127.0.0.1:$port"
  export KAFKA_BOOTSTRAP
  echo "# started Apache Kafka $KAFKA_VERSION (pid $KAFKA_BROKER_PID) on $KAFKA_BOOTSTRAP, log $KAFKA_BROKER_LOG"
}

# start_kafka_cluster NAME N: N combined broker+controller nodes (ids 1..N) on free ports, each
# with its own properties file $KAFKA_CLUSTER_DIR/node-<id>.properties and log node-<id>.log.
# Exports KAFKA_BOOTSTRAP (every node) and KAFKA_CLUSTER_DIR. Node helpers: kafka_node_kill ID,
# kafka_node_start ID. stop_kafka_cluster stops them all.
start_kafka_cluster() {
  local name="$1" n="$2" i voters="" cluster_id
  install_kafka_broker || return 1
  KAFKA_CLUSTER_DIR="$(mktemp -d "/tmp/kafka-$name.XXXXXX")"
  export KAFKA_CLUSTER_DIR
  local -a ports cports
  for i in $(seq 1 "$n"); do
    ports[$i]="$(_kb_free_port)"; cports[$i]="$(_kb_free_port)"
    voters="${voters:+$voters,}$i@127.0.0.1:${cports[$i]}"
  done
  cluster_id="$(java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-tools.properties" \
      kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
  KAFKA_BOOTSTRAP=""
  for i in $(seq 1 "$n"); do
    printf '%s\n' \
      "process.roles=broker,controller" "node.id=$i" "controller.quorum.voters=$voters" \
      "listeners=PLAINTEXT://127.0.0.1:${ports[$i]},CONTROLLER://127.0.0.1:${cports[$i]}" \
      "advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$i]}" "controller.listener.names=CONTROLLER" \
      "inter.broker.listener.name=PLAINTEXT" \
      "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" \
      "log.dirs=$KAFKA_CLUSTER_DIR/data-$i" "num.partitions=3" "default.replication.factor=3" \
      "min.insync.replicas=2" "offsets.topic.replication.factor=3" "offsets.topic.num.partitions=3" \
      "transaction.state.log.replication.factor=3" "transaction.state.log.min.isr=2" \
      "transaction.state.log.num.partitions=3" "group.initial.rebalance.delay.ms=300" \
      "unclean.leader.election.enable=false" > "$KAFKA_CLUSTER_DIR/node-$i.properties"
    java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-tools.properties" \
      kafka.tools.StorageTool format --cluster-id="$cluster_id" --config "$KAFKA_CLUSTER_DIR/node-$i.properties" \
      >> "$KAFKA_CLUSTER_DIR/node-$i.log" 2>&1 || { echo "format of node $i failed" >&2; return 1; }
    KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:+$KAFKA_BOOTSTRAP,}127.0.0.1:${ports[$i]}"
  done
  export KAFKA_BOOTSTRAP
  for i in $(seq 1 "$n"); do kafka_node_start "$i" nowait; done
  for i in $(seq 1 "$n"); do _kb_wait_started "$KAFKA_CLUSTER_DIR/node-$i.log" || return 1; done
  echo "# started a $n-node Apache Kafka $KAFKA_VERSION cluster on $KAFKA_BOOTSTRAP ($KAFKA_CLUSTER_DIR)"
}

kafka_node_start() { # ID [nowait]
  local props="$KAFKA_CLUSTER_DIR/node-$1.properties" log="$KAFKA_CLUSTER_DIR/node-$1.log"
  sed -i 's/Kafka Server started/Kafka Server started (earlier run)/' "$log"
  java -Xmx256m -Xms256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$_kb_root/bench/kafka/log4j2-broker.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$props" >> "$log" 2>&1 &
  [ "${2:-}" = nowait ] || _kb_wait_started "$log"
}

kafka_node_kill() { # ID
  pkill -9 -f "kafka.Kafka $KAFKA_CLUSTER_DIR/node-$1.properties" 2>/dev/null || true
}

_kb_wait_started() { # LOG: waits for a "Kafka Server started" line of the current run
  local _
  for _ in $(seq 1 1200); do
    grep -v "(earlier run)" "$1" 2>/dev/null | grep -q "Kafka Server started" && return 0
    sleep 0.1
  done
  echo "no 'Kafka Server started' in $1 after 120 s" >&2; tail -20 "$1" >&2; return 1
}

stop_kafka_cluster() {
  [ -n "${KAFKA_CLUSTER_DIR:-}" ] || return 0
  pkill -f "kafka.Kafka $KAFKA_CLUSTER_DIR/" 2>/dev/null || true
  local _
  for _ in $(seq 1 100); do pgrep -f "kafka.Kafka $KAFKA_CLUSTER_DIR/" >/dev/null || break; sleep 0.1; done
  pkill -9 -f "kafka.Kafka $KAFKA_CLUSTER_DIR/" 2>/dev/null || true
  rm -rf "$KAFKA_CLUSTER_DIR"; KAFKA_CLUSTER_DIR=""
}

# kill -9 (every broker started with these properties), then the same broker again on the same
# ports and data. Prints "pid N" for callers in another process.
restart_kafka_broker() {
  pkill -9 -f "kafka.Kafka $KAFKA_BROKER_PROPS" 2>/dev/null || true
  local _
  for _ in $(seq 1 50); do pgrep -f "kafka.Kafka $KAFKA_BROKER_PROPS" >/dev/null || break; sleep 0.1; done
  echo "=== restart $(date +%T)" >> "$KAFKA_BROKER_LOG"
  sed -i 's/Kafka Server started/Kafka Server started (earlier run)/' "$KAFKA_BROKER_LOG"
  _kb_launch && echo "pid $KAFKA_BROKER_PID"
}

# kill -9 only (for an outage that lasts until restart_kafka_broker).
kill_kafka_broker() {
  pkill -9 -f "kafka.Kafka $KAFKA_BROKER_PROPS" 2>/dev/null || true
}

stop_kafka_broker() {
  if [ -n "${KAFKA_BROKER_PROPS:-}" ]; then
    # By properties file: a broker restarted by another process is stopped too.
    pkill -f "kafka.Kafka $KAFKA_BROKER_PROPS" 2>/dev/null || true
    local _
    for _ in $(seq 1 100); do pgrep -f "kafka.Kafka $KAFKA_BROKER_PROPS" >/dev/null || break; sleep 0.1; done
    pkill -9 -f "kafka.Kafka $KAFKA_BROKER_PROPS" 2>/dev/null || true
    wait "$KAFKA_BROKER_PID" 2>/dev/null || true
    KAFKA_BROKER_PID=""
  fi
  if [ -n "$_kb_dir" ]; then rm -rf "$_kb_dir"; _kb_dir=""; fi
}

# Shows the end of the broker log (when a suite failed).
kafka_broker_log_tail() {
  [ -n "$_kb_dir" ] && [ -f "$KAFKA_BROKER_LOG" ] || return 0
  echo "# last lines of the Kafka broker log ($KAFKA_BROKER_LOG):"
  grep -v "^\s*$" "$KAFKA_BROKER_LOG" | tail -20 | sed 's/^/#   /'
}
