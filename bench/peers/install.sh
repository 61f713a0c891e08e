#!/usr/bin/env bash
# Installs the Kinesis emulators used as benchmark peers into /work/main/.cache/bench-peers
# (or $BENCH_PEERS_DIR). Idempotent: re-running it with everything in place does nothing.
#
#   kinesalite@3.3.3     started by bench/peers/kinesalite-server.js (binds 127.0.0.1 only)
#   kinesis-local@0.6.2  kinesis-mock packaged for node; its main.js binds 0.0.0.0, which is
#                        patched to 127.0.0.1 here.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEST="${BENCH_PEERS_DIR:-$ROOT/.cache/bench-peers}"

KINESALITE_VERSION=3.3.3
KINESIS_LOCAL_VERSION=0.6.2

mkdir -p "$DEST"
cd "$DEST"

installed_version() {
  # prints the installed version of package $1, or nothing
  local pj="$DEST/node_modules/$1/package.json"
  [ -f "$pj" ] && node -e 'console.log(require(process.argv[1]).version)' "$pj" || true
}

if [ ! -f package.json ]; then
  cat > package.json <<'EOF'
{ "name": "strait-bench-peers", "private": true, "version": "0.0.0" }
EOF
fi

need=()
[ "$(installed_version kinesalite)" = "$KINESALITE_VERSION" ] || need+=("kinesalite@$KINESALITE_VERSION")
[ "$(installed_version kinesis-local)" = "$KINESIS_LOCAL_VERSION" ] || need+=("kinesis-local@$KINESIS_LOCAL_VERSION")

if [ "${#need[@]}" -gt 0 ]; then
  echo "bench-peers: npm install ${need[*]} into $DEST" >&2
  npm install --no-audit --no-fund --save-exact "${need[@]}" >&2
fi

# --- patch kinesis-local so it listens on loopback only --------------------------------------
KL_DIR="$DEST/node_modules/kinesis-local"
KL_MAIN="$KL_DIR/main.js"
if [ ! -f "$KL_MAIN" ]; then
  echo "bench-peers: $KL_MAIN not found; kinesis-local layout changed?" >&2
  exit 1
fi
if grep -q '0\.0\.0\.0' "$KL_MAIN"; then
  echo "bench-peers: patching 0.0.0.0 -> 127.0.0.1 in $KL_MAIN" >&2
  sed -i 's/0\.0\.0\.0/127.0.0.1/g' "$KL_MAIN"
fi
if grep -q '0\.0\.0\.0' "$KL_MAIN"; then
  echo "bench-peers: patch of $KL_MAIN failed" >&2
  exit 1
fi
# Any other file in the package that still names 0.0.0.0 is reported (not fatal).
others="$(grep -rl '0\.0\.0\.0' "$KL_DIR" --include='*.js' 2>/dev/null | grep -v '/main.js$' || true)"
if [ -n "$others" ]; then
  echo "bench-peers: note: other files mention 0.0.0.0: $others" >&2
fi

# --- kinesalite launcher (loopback only) ------------------------------------------------------
cp "$HERE/kinesalite-server.js" "$DEST/kinesalite-server.js"

echo "bench-peers: ready in $DEST (kinesalite $(installed_version kinesalite), kinesis-local $(installed_version kinesis-local))" >&2
