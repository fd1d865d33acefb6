#!/usr/bin/env bash
# run_fuzzer.sh TARGET SCRATCH_CORPUS SEED_CORPUS SECONDS [libFuzzer flags...]
# Replays every seed (regression inputs included), then fuzzes for SECONDS. Exit status is
# libFuzzer's: non-zero on a crash, a sanitizer report, a leak or an input slower than -timeout.
set -euo pipefail
target=$1 scratch=$2 seeds=$3 seconds=$4
shift 4
mkdir -p "$scratch"
# Readable stacks in reports (llvm-19 from scripts/setup.sh).
symbolizer=/usr/lib/llvm-19/bin/llvm-symbolizer
[ -x "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH=$symbolizer
artifacts="$scratch.artifacts"
mkdir -p "$artifacts"
# A fixed seed (KH_FUZZ_SEED, default 1) makes the bounded runs of the test command repeatable;
# KH_FUZZ_SEED=0 lets libFuzzer pick one (the long on-demand runs of fuzz/README.md).
exec "$target" "$scratch" "$seeds" -seed="${KH_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" "$@"
