#!/usr/bin/env bash
# strait's own TLS and SASL login to the cluster: an Apache Kafka 4.x broker whose client listener
# is SASL_SSL only (PEM keystore from `strait cert`; PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 users),
# and strait in front of it with backend.kafka.tls + backend.kafka.sasl, so plaintext clients
# without credentials reach it through strait. secured.py holds the checks; msk_iam.py then checks
# AWS_MSK_IAM's web-identity credentials against moto's STS.
#   tests/interop/kafka-backend/secured.sh
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
bin="${STRAIT_BIN:-$repo_root/target/debug/strait}"

source "$repo_root/tests/interop/lib/kafka-broker.sh"
install_kafka_broker || exit 2
dir="$(mktemp -d /tmp/kafka-secured.XXXXXX)"
KAFKA_BROKER_PROPS="$dir/server.properties"; KAFKA_BROKER_LOG="$dir/broker.log"
export KAFKA_BROKER_PROPS KAFKA_BROKER_LOG
trap 'stop_kafka_broker; rm -rf "$dir"' EXIT

"$bin" cert --out "$dir/certs" --host localhost >/dev/null || { echo "strait cert failed" >&2; exit 2; }
cat "$dir/certs/key.pem" "$dir/certs/cert.pem" > "$dir/keystore.pem"
sport="$(_kb_free_port)"; iport="$(_kb_free_port)"; cport="$(_kb_free_port)"
cat > "$KAFKA_BROKER_PROPS" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=SASL_SSL://127.0.0.1:$sport,INTERNAL://127.0.0.1:$iport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$sport,INTERNAL://127.0.0.1:$iport
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$dir/data
num.partitions=2
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
ssl.keystore.type=PEM
ssl.keystore.location=$dir/keystore.pem
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_strait="plain-secret";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
cluster_id="$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$repo_root/bench/kafka/log4j2-tools.properties" \
  kafka.tools.StorageTool format --cluster-id="$cluster_id" --config "$KAFKA_BROKER_PROPS" \
  --add-scram 'SCRAM-SHA-256=[name=strait,password=scram256-secret]' \
  --add-scram 'SCRAM-SHA-512=[name=strait,password=scram512-secret]' >> "$KAFKA_BROKER_LOG" 2>&1 \
  || { echo "format failed" >&2; tail -20 "$KAFKA_BROKER_LOG" >&2; exit 2; }
_kb_launch || exit 2
echo "# started Apache Kafka $KAFKA_VERSION with SASL_SSL only on 127.0.0.1:$sport (PLAIN, SCRAM-SHA-256/512)"

KAFKA_SECURED="127.0.0.1:$sport" KAFKA_CA="$dir/certs/ca.pem" STRAIT_BIN="$bin" \
  STRAIT_CONFIG="$repo_root/config/strait.yaml" "$venv/bin/python" "$here/secured.py"
rc=$?
[ $rc -eq 0 ] || { echo "# broker log:"; grep -E "ERROR|WARN" "$KAFKA_BROKER_LOG" | tail -10 | sed 's/^/#   /'; }
# AWS_MSK_IAM with an EKS IRSA web identity, against moto's STS (no MSK cluster runs here).
KAFKA_TLS_DIR="$dir/certs" STRAIT_BIN="$bin" STRAIT_CONFIG="$repo_root/config/strait.yaml" \
  "$venv/bin/python" "$here/msk_iam.py" || rc=1
exit $rc
