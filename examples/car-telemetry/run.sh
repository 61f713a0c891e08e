#!/usr/bin/env bash
# The car-telemetry example against a strait: the one at STRAIT_ENDPOINT and STRAIT_KAFKA when
# both are set, otherwise a strait started here on free ports (target/debug/strait, or
# STRAIT_BIN) with config/strait.yaml and a temporary data directory, stopped afterwards.
# Uses the Python venv of the test suites (.cache/venv; boto3 and confluent-kafka).
#   examples/car-telemetry/run.sh [--cars N] [--updates N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo_root/.cache/venv}"
[ -x "$venv/bin/python" ] || bash "$repo_root/tests/interop/python/run.sh" --version >/dev/null
if [ -z "${STRAIT_ENDPOINT:-}" ] || [ -z "${STRAIT_KAFKA:-}" ]; then
  source "$repo_root/tests/interop/lib/strait.sh"
  trap _strait_stop EXIT
  start_strait car-telemetry
fi
"$venv/bin/python" "$here/car_telemetry.py" --kinesis "$STRAIT_ENDPOINT" --kafka "$STRAIT_KAFKA" "$@"
