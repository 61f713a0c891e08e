#!/usr/bin/env bash
# strait's Kafka backend against a real Apache Kafka 4.x broker (KRaft, single node, jars from Maven
# Central), both started and stopped here:
#   1. checks.py: both-ways visibility (through strait vs directly), Metadata and ApiVersions
#      rewriting, bad frames, /readyz and a broker kill -9 + restart under idempotent load;
#   2. the Kafka client suites of the Kafka issue through strait's pass-through: Apache Kafka Java
#      clients and tools (plus transactions and the KIP-848 consumer protocol), franz-go, kcat;
#      and the bad-input suite's produce-validation checks against the broker directly;
#   3. leader_change.sh: a 3-node cluster, a partition leader killed and restarted under load;
#   4. Kinesis clients on the Kafka backend: kinesis_checks.py (both sides in view, two replicas,
#      a broker kill under PutRecords load), then the Kinesis suites of the first and EFO issues
#      against this strait: boto3, the Java SDK v2 (three modes, TLS included), the Rust SDK,
#      KCL 3 and KPL 1 (the AWS CLI and the other transports run on the embedded backend);
#      then migration_checks.py (a stream mirrored from a Kinesis source, issue 16), with strait's
#      embedded backend and then kinesalite as the source;
#   5. secured.sh: strait's own TLS + SASL (PLAIN, SCRAM-SHA-256/512) to a SASL_SSL-only broker;
#   6. prefixed.sh: backend.kafka.topic_prefix, checked from both sides (prefix_checks.py), then
#      the Kafka client suites again through the prefixed strait.
#   tests/interop/kafka-backend/run.sh
# Caches: .cache/kafka-broker (the broker), .cache/m2 (M2_REPO), .cache/venv (STRAIT_PY_VENV).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
export M2_REPO="${M2_REPO:-$repo_root/.cache/m2}"

source "$repo_root/tests/interop/lib/kafka-broker.sh"
source "$repo_root/tests/interop/lib/strait.sh"
start_kafka_broker kafka-backend || exit 2

port="$(free_pass_through_port)"
# A certificate for the Kinesis port, so the TLS modes of the Kinesis suites run too.
certdir="$(mktemp -d /tmp/strait-kb-cert.XXXXXX)"
"${STRAIT_BIN:-$repo_root/target/debug/strait}" cert --out "$certdir" --host localhost >/dev/null \
  || { stop_kafka_broker; exit 2; }
start_strait kafka-backend STRAIT_BACKEND__TYPE=kafka STRAIT_BACKEND__KAFKA__BOOTSTRAP="$KAFKA_BOOTSTRAP" \
  STRAIT_KAFKA__LISTEN="127.0.0.1:$port" STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:$port" \
  STRAIT_KINESIS__TLS__CERT="$certdir/cert.pem" STRAIT_KINESIS__TLS__KEY="$certdir/key.pem" \
  || { stop_kafka_broker; exit 2; }
trap '_strait_stop; stop_kafka_broker; rm -rf "$certdir"' EXIT
export STRAIT_CA="$certdir/ca.pem" STRAIT_TLS_CA="$certdir/ca.pem"
export STRAIT_TLS_ENDPOINT="https://localhost:${STRAIT_ENDPOINT##*:}"

failures=()
run() { run_part "$@"; }

export KAFKA_PORT_PER_BROKER=true
# Closed parents end once sealed, 5 s after the split is written (src/core/late_writes.rs,
# LATE_WRITES), plus the seal's own round trips to the cluster.
export STRAIT_CLOSED_SHARD_GRACE_S=8
run "pass-through checks" "$venv/bin/python" "$here/checks.py"
run "Kafka Java clients and tools (with transactions)" env KAFKA_TRANSACTIONS=true bash "$repo_root/tests/interop/kafka-java/run.sh"
run "franz-go" bash "$repo_root/tests/interop/franz-go/run.sh"
run "kcat" bash "$repo_root/tests/interop/kcat/run.sh"
run "Kinesis on Kafka: both sides, two replicas, broker restart under PutRecords" \
  "$venv/bin/python" "$here/kinesis_checks.py"
# The AWS CLI suite (a front-end client, slow: one process per call) and the transports the backend does not
# tell apart run on the embedded backend only: boto3 covers JSON over HTTP/1.1, the Java SDK's three modes
# CBOR over HTTP/1.1 and h2c and JSON over TLS (h2 by ALPN).
run "boto3 Kinesis suites" bash "$repo_root/tests/interop/python/run.sh" -q -p no:cacheprovider \
  test_boto3_acceptance.py test_boto3_ops.py test_bad_input.py test_efo.py \
  test_efo_consumers.py test_kpl_aggregation.py
run "AWS SDK for Java v2 (CBOR over HTTP/1.1 and h2c, JSON over TLS)" bash "$repo_root/tests/interop/java/run.sh" \
  cbor/http1 cbor/h2c json/tls
run "AWS SDK for Rust" bash "$repo_root/tests/interop/rust-sdk/run.sh"
# basic and reshard: reading, checkpoints and lineage on this backend. The worker-takeover
# scenarios (restart, handover) are about KCL's leases, and run on the embedded and Kinesis
# backends (kcl-interop, kinesis-backend); left out here to keep CI under its hour.
run "KCL 3 (enhanced fan-out, h2c)" env KCL_MODES=h2c bash "$repo_root/tests/interop/kcl/run.sh" basic reshard
run "KPL 1 (TLS)" env STRAIT_ENDPOINT="$STRAIT_TLS_ENDPOINT" bash "$repo_root/tests/interop/kpl/run.sh"
run "metrics after the suites" "$venv/bin/python" "$here/metrics_check.py"
# Two sources, so no one implementation's quirks become the mirror's behaviour: strait's embedded
# backend, and kinesalite (npm, installed by bench/peers/install.sh into .cache/bench-peers; it keeps
# KPL aggregates as written, reshards as Kinesis does, and cuts CBOR answers off at 16 KiB).
# MIGRATION_SOURCES="strait kinesalite moto" adds moto's server (its reshards are not Kinesis's).
for source in ${MIGRATION_SOURCES:-strait kinesalite}; do
  if [ "$source" = kinesalite ] && ! bash "$repo_root/bench/peers/install.sh" >/dev/null 2>&1; then
    failures+=("migration (source: kinesalite): bench/peers/install.sh failed"); continue
  fi
  run "migration: a Kinesis stream mirrored into the cluster (source: $source)" \
    env MIGRATION_SOURCE="$source" "$venv/bin/python" "$here/migration_checks.py"
done
# The bad-input suite's produce checks against the broker itself, so the codes they expect from
# strait's embedded backend are Apache Kafka's (strait's own rules are marked and skipped there).
run "produce validation checks against Apache Kafka itself" env -u STRAIT_ENDPOINT \
  STRAIT_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" bash "$repo_root/tests/interop/python/run.sh" -q \
  -p no:cacheprovider test_kafka_bad_input.py -k "refused or new_producer or idempotent_retry or crc or truncated_batch or every_advertised"
if [ ${#failures[@]} -gt 0 ]; then
  strait_log_tail_on_failure 1
  kafka_broker_log_tail
fi
# The single broker and its strait make way for the 3-node cluster.
_strait_stop; _strait_pid=""; stop_kafka_broker
run "leader change on a 3-node cluster" bash "$here/leader_change.sh"
run "strait's TLS and SASL login (PLAIN, SCRAM-SHA-256/512) to a SASL_SSL-only broker" bash "$here/secured.sh"
run "topic_prefix: both sides, then the Kafka client suites through a prefixed strait" bash "$here/prefixed.sh"

if [ ${#failures[@]} -gt 0 ]; then
  echo "# failed: ${failures[*]}"
  exit 1
fi
