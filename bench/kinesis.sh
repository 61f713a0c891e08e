#!/usr/bin/env bash
# Kinesis benchmark: strait vs kinesalite vs kinesis-local, all on 127.0.0.1.
#   bench/kinesis.sh                 build, install peers, 3 runs per server, print the table
#   bench/kinesis.sh --repeats 5     more runs
#   bench/kinesis.sh --scale         grow one strait stream to 10M records, per-step put cost
#   bench/kinesis.sh --help          every option
# The table is also written to bench/results/latest.md (scale: bench/results/scale-latest.md).
set -euo pipefail
exec python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run_kinesis.py" "$@"
