#!/usr/bin/env bash
# Coverage-guided fuzzing of everything strait parses from the network or the disk (cargo fuzz,
# libFuzzer, the nightly toolchain). Targets: fuzz/fuzz_targets/*.rs; committed seeds:
# fuzz/seeds/<target>/ (made by fuzz/seeds/make.py); findings: fuzz/artifacts/<target>/.
#   fuzz/run.sh smoke                      # the test command's form (unoptimised build): each
#                                          # target over its seeds, then FUZZ_SMOKE_SECS (4) s
#   fuzz/run.sh campaign SECS [target...]  # each target SECS seconds, corpus kept in
#                                          # fuzz/corpus/<target> across runs; prints run counts
#   fuzz/run.sh replay FILE TARGET         # one input, e.g. a crash, with its stack
# cargo-fuzz is installed into .cache/cargo-fuzz; nightly by rustup when it is missing.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${STRAIT_CACHE:-$repo/.cache}"
export PATH="$cache/cargo-fuzz/bin:$PATH"
mode="${1:-smoke}"; shift || true

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal || { echo "FAIL no nightly toolchain for cargo fuzz"; exit 1; }
fi
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --root "$cache/cargo-fuzz" --quiet \
    || { echo "FAIL could not install cargo-fuzz"; exit 1; }
fi
cd "$here"
# The smoke form builds without optimisation: about a third of the release build's time on two
# cores, and what it runs for is the seeds and a few seconds, not throughput.
if [ "$mode" = smoke ]; then profile=(--dev); dir=debug; else profile=(); dir=release; fi
cargo +nightly fuzz build "${profile[@]}" >"${TMPDIR:-/tmp}/strait-fuzz-build.log" 2>&1 \
  || { tail -30 "${TMPDIR:-/tmp}/strait-fuzz-build.log"; echo "FAIL the fuzz targets do not build"; exit 1; }
bin="$here/target/x86_64-unknown-linux-gnu/$dir"
targets=$(cargo +nightly fuzz list)

run() { # target, seconds, corpus dir
  local t=$1 secs=$2 corpus=$3
  mkdir -p "$corpus" "$here/artifacts/$t"
  "$bin/$t" "$corpus" "$here/seeds/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
    -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$here/artifacts/$t/" >"$corpus.log" 2>&1
  local rc=$?
  # Filtered after the run: a pipe into head could end libFuzzer before it writes its artifact.
  grep -E '^(stat::number_of_executed_units|stat::new_units_added)|ERROR|panicked|SUMMARY|Test unit written|^    #[0-9]+ .* in strait' \
    "$corpus.log" | head -40
  rm -f "$corpus.log"
  return $rc
}

passed=0; failed=0
case "$mode" in
  smoke)
    secs="${FUZZ_SMOKE_SECS:-4}"
    for t in $targets; do
      scratch="$(mktemp -d)"
      if run "$t" "$secs" "$scratch" >"$scratch.out"; then
        passed=$((passed + 1))
        echo "PASS fuzz $t: $(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch.out") runs in ${secs} s, no finding"
      else
        failed=$((failed + 1)); echo "FAIL fuzz $t:"; sed 's/^/#   /' "$scratch.out"
      fi
      rm -rf "$scratch" "$scratch.out"
    done
    ;;
  campaign)
    secs="${1:?campaign SECS [target...]}"; shift
    [ $# -gt 0 ] && targets="$*"
    for t in $targets; do
      out="$(mktemp)"
      if run "$t" "$secs" "$here/corpus/$t" >"$out"; then passed=$((passed + 1)); verdict=ok; else failed=$((failed + 1)); verdict=FINDING; fi
      echo "$(date -u +%FT%TZ) $t $verdict runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out") secs=$secs corpus=$(ls "$here/corpus/$t" | wc -l)"
      [ "$verdict" = ok ] || sed 's/^/#   /' "$out"
      rm -f "$out"
    done
    ;;
  replay)
    file="${1:?replay FILE TARGET}"; t="${2:?replay FILE TARGET}"
    RUST_BACKTRACE=1 "$bin/$t" "$file" -rss_limit_mb=2048
    exit $?
    ;;
  *) echo "usage: fuzz/run.sh smoke | campaign SECS [target...] | replay FILE TARGET"; exit 2 ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
