#!/usr/bin/env bash
# Run strait's Python interop suites (boto3, AWS CLI v1, crash/restart, bad input).
#
#   tests/interop/python/run.sh [pytest args...]
#
# Creates/refreshes the venv at <repo>/.cache/venv from requirements.txt, builds the debug
# binary if it is missing, and runs pytest in this directory. Environment:
#   STRAIT_BIN       binary to test (default <repo>/target/debug/strait)
#   STRAIT_ENDPOINT  test an already-running server instead (restart/crash tests skip)
#   STRAIT_PY_VENV   venv location (default <repo>/.cache/venv)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
VENV=${STRAIT_PY_VENV:-$REPO/.cache/venv}

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
stamp="$VENV/.strait-requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" > "$stamp"
fi

if [ -z "${STRAIT_ENDPOINT:-}" ]; then
  BIN=${STRAIT_BIN:-$REPO/target/debug/strait}
  if [ ! -x "$BIN" ]; then
    echo "strait binary not found at $BIN; building it" >&2
    (cd "$REPO" && cargo build --bin strait)
  fi
fi

cd "$HERE"
exec "$VENV/bin/python" -m pytest "$@"
