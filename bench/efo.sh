#!/usr/bin/env bash
# Enhanced fan-out benchmark: strait vs kinesis-local (kinesis-mock), all on 127.0.0.1.
#   bench/efo.sh                    build what is missing, install the peer, 3 repeats, print the table
#   bench/efo.sh --repeats 5        more repeats
#   bench/efo.sh --servers strait   strait only
#   bench/efo.sh --help             every option
# Measures put -> SubscribeToShard latency (PutRecord and Kafka produce) and 1 vs 5 consumer
# fan-out throughput on one shard. Table also in bench/results/efo-latest.md (+ .json).
set -euo pipefail
exec python3 "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run_efo.py" "$@"
