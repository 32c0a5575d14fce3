#!/bin/sh
# run_fuzzer.sh FUZZER SEEDS CORPUS SECONDS: runs a libFuzzer target for
# SECONDS, starting from SEEDS (read only, in the source tree) and what
# CORPUS (in the build directory) kept from earlier runs; new inputs go to
# CORPUS, a failing one to crash-*/leak-*/timeout-* next to it.
set -eu
fuzzer=$1 seeds=$2 corpus=$3 seconds=$4
mkdir -p "$corpus"
cd "$(dirname "$corpus")"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 "$corpus" "$seeds"
