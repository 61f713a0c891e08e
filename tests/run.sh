#!/usr/bin/env bash
# The one test command (README): installs what the tests need into .cache/ and runs every test.
#   unit and integration tests (cargo test)
#   interop: boto3 + AWS CLI (pytest), AWS SDK for Java v2 (Maven), aws-sdk-kinesis (Rust)
# Each interop suite starts and stops its own strait with a temp data dir on a free port.
# Set STRAIT_SKIP="java rust-sdk" (any of: cargo python example java kcl kpl rust-sdk kafka-java franz-go
# kcat kafka-connect kinesis-backend kafka-on-kinesis kafka-backend soak fuzz helm)
# to skip suites locally.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cache="${STRAIT_CACHE:-$repo/.cache}"
mkdir -p "$cache"
skip=" ${STRAIT_SKIP:-} "
passed=0; failed=0; failures=(); timings=()
run_start=$SECONDS

step() { printf '\n=== %s\n' "$*"; }
record() { # name, exit status
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}
# Each suite's output also goes to $logs/<name>.log, so the summary can repeat the lines that
# name what failed (CI shows only the end of a run).
logs="$cache/logs"; rm -rf "$logs"; mkdir -p "$logs"
# A suite that hangs (a client's shutdown hook, a server that never answers) is stopped after
# STRAIT_SUITE_TIMEOUT seconds, with everything it started, so one hang cannot eat CI's whole limit.
suite_timeout="${STRAIT_SUITE_TIMEOUT:-1500}"
took() { # name, start
  timings+=("$(printf '%-24s %5d s' "$1" $((SECONDS - $2)))")
  echo "--- $1 took $((SECONDS - $2)) s ($(date -u +%H:%M:%S))"
}
suite() { # name, command...
  local name=$1 start=$SECONDS rc; shift
  timeout -k 30 "$suite_timeout" "$@" 2>&1 | tee "$logs/$name.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -ne 124 ] || echo "FAIL $name: timed out after $suite_timeout s" | tee -a "$logs/$name.log"
  record "$name" "$rc"
  took "$name" "$start"
}
wanted() { [[ "$skip" != *" $1 "* ]]; }

step "build strait (debug)"
build_start=$SECONDS
cargo build --all-targets || { echo "build failed"; exit 1; }
took build "$build_start"
export STRAIT_BIN="$repo/target/debug/strait"

if wanted cargo; then
  step "cargo test: unit and integration tests"
  suite cargo-test cargo test
fi

if wanted python; then
  step "python interop: boto3, AWS CLI v1 and v2, confluent-kafka, kafka-python"
  # AWS CLI v2 is not on PyPI; Debian's awscli package is v2 (2.9).
  if [ ! -x /usr/bin/aws ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli >/dev/null) \
      || echo "could not install Debian's awscli (AWS CLI v2)"
  fi
  suite python-interop env STRAIT_PY_VENV="$cache/venv" bash "$repo/tests/interop/python/run.sh" -q
fi

if wanted example && [ -f "$repo/examples/car-telemetry/run.sh" ]; then
  step "example: car telemetry (PutRecord, enhanced fan-out, two Kafka groups; per-car order checked)"
  suite car-telemetry-example env STRAIT_PY_VENV="$cache/venv" bash "$repo/examples/car-telemetry/run.sh"
fi

if wanted java; then
  step "java interop: AWS SDK for Java v2 (CBOR and JSON over HTTP/1.1, h2c and TLS; enhanced fan-out)"
  suite java-interop env M2_REPO="$cache/m2" bash "$repo/tests/interop/java/run.sh"
fi

if wanted kcl && [ -f "$repo/tests/interop/kcl/run.sh" ]; then
  step "kinesis interop: KCL 3.x with enhanced fan-out over h2c and TLS (DynamoDB from moto)"
  suite kcl-interop env M2_REPO="$cache/m2" bash "$repo/tests/interop/kcl/run.sh"
fi

if wanted kpl && [ -f "$repo/tests/interop/kpl/run.sh" ]; then
  step "kinesis interop: KPL 1.1 with aggregation over TLS, read back by a Kafka group and GetRecords"
  suite kpl-interop env M2_REPO="$cache/m2" bash "$repo/tests/interop/kpl/run.sh"
fi

if wanted rust-sdk && [ -f "$repo/tests/interop/rust-sdk/run.sh" ]; then
  step "rust interop: aws-sdk-kinesis"
  suite rust-sdk-interop bash "$repo/tests/interop/rust-sdk/run.sh"
fi

if wanted kafka-java && [ -f "$repo/tests/interop/kafka-java/run.sh" ]; then
  step "kafka interop: Apache Kafka Java clients and tools"
  suite kafka-java-interop env M2_REPO="$cache/m2" bash "$repo/tests/interop/kafka-java/run.sh"
fi

if wanted franz-go && [ -f "$repo/tests/interop/franz-go/run.sh" ]; then
  step "kafka interop: franz-go"
  suite franz-go-interop bash "$repo/tests/interop/franz-go/run.sh"
fi

if wanted kcat && [ -f "$repo/tests/interop/kcat/run.sh" ]; then
  step "kafka interop: kcat (Debian, librdkafka 2.0)"
  suite kcat-interop bash "$repo/tests/interop/kcat/run.sh"
fi

if wanted kafka-connect && [ -f "$repo/tests/interop/kafka-connect/run.sh" ]; then
  step "kafka interop: Kafka Connect (standalone worker, a source and a sink connector)"
  suite kafka-connect-interop env M2_REPO="$cache/m2" bash "$repo/tests/interop/kafka-connect/run.sh"
fi

if wanted kinesis-backend && [ -f "$repo/tests/interop/kinesis-backend/run.sh" ]; then
  step "kinesis backend: the pass-through to moto (IAM authentication on) and to strait's embedded backend (boto3, AWS CLI, Java SDK v2 with enhanced fan-out)"
  suite kinesis-backend env STRAIT_PY_VENV="$cache/venv" M2_REPO="$cache/m2" bash "$repo/tests/interop/kinesis-backend/run.sh"
fi

if wanted kafka-on-kinesis && [ -f "$repo/tests/interop/kafka-on-kinesis/run.sh" ]; then
  step "kafka on kinesis: Kafka clients through strait's Kinesis backend, against strait's embedded backend and moto as the upstream"
  suite kafka-on-kinesis env STRAIT_PY_VENV="$cache/venv" bash "$repo/tests/interop/kafka-on-kinesis/run.sh"
fi

if wanted kafka-backend && [ -f "$repo/tests/interop/kafka-backend/run.sh" ]; then
  step "kafka backend: a real Apache Kafka 4.x broker behind strait (pass-through checks, Java with transactions, franz-go, kcat)"
  suite kafka-backend env STRAIT_PY_VENV="$cache/venv" M2_REPO="$cache/m2" bash "$repo/tests/interop/kafka-backend/run.sh"
fi

if wanted soak && [ -f "$repo/tests/soak/run.sh" ]; then
  step "fault loops: kill -9 cycles under mixed Kinesis, Kafka, group-commit and EFO load (campaign: SOAK_CYCLES=50), a full disk"
  suite soak env STRAIT_PY_VENV="$cache/venv" bash "$repo/tests/soak/run.sh"
fi

if wanted fuzz && [ -f "$repo/fuzz/run.sh" ]; then
  step "fuzzing: each cargo-fuzz target over its committed seeds, then a short run (campaigns: fuzz/run.sh campaign)"
  suite fuzz bash "$repo/fuzz/run.sh" smoke
fi

if wanted helm && [ -f "$repo/tests/helm/run.sh" ]; then
  step "helm chart: lint, template for each example, Kubernetes schema validation"
  suite helm bash "$repo/tests/helm/run.sh"
fi

step "summary"
# Wall time per suite: CI has a hard limit, so the slow ones should be visible in every run.
printf '%s\n' "${timings[@]}"
echo "total $((SECONDS - run_start)) s"
for name in "${failures[@]}"; do
  echo "--- what failed in $name (from $logs/$name.log)"
  grep -E '^(FAIL|FAILED|ERROR|not ok|--- FAIL|test .* FAILED|thread .* panicked)' "$logs/$name.log" | head -40
done
[ ${#failures[@]} -eq 0 ] || echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
