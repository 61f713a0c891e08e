#!/usr/bin/env bash
# Fault loops against a real strait process (issue: bounded under abuse).
#   tests/soak/run.sh                  # the test command's short form: 3 kill -9 cycles under
#                                      # load, 10 during catalog changes, then the full-disk
#                                      # check (a 24 MiB tmpfs; needs root)
#   SOAK_CATALOG_CYCLES=50 ...         # the catalog campaign
#   SOAK_CYCLES=50 SOAK_JSON=/tmp/kill-loop.json tests/soak/run.sh   # the kill-loop campaign
# Uses the tests' venv (.cache/venv, made from tests/interop/python/requirements.txt) and
# $STRAIT_BIN (default target/debug/strait).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${STRAIT_PY_VENV:-$repo/.cache/venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/tests/interop/python/requirements.txt"
fi
args=(--cycles "${SOAK_CYCLES:-3}")
[ -z "${SOAK_JSON:-}" ] || args+=(--json "$SOAK_JSON")
rc=0
"$venv/bin/python" "$here/kill_loop.py" "${args[@]}" || rc=1
"$venv/bin/python" "$here/catalog_kill.py" --cycles "${SOAK_CATALOG_CYCLES:-10}" || rc=1
"$venv/bin/python" "$here/full_disk.py" || rc=1
exit $rc
