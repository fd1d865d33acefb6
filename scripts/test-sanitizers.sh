#!/usr/bin/env bash
# The test suite under the sanitizers (usage: scripts/test-sanitizers.sh [asan|tsan|all], default all).
#   asan: AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#         (KH_ASAN_BUILD_DIR), then the whole ctest suite: unit, integration with real kernels,
#         conformance, Node tests (every kernel-host and kernel-host-python they start is instrumented).
#   tsan: ThreadSanitizer build in build-tsan/ (KH_TSAN_BUILD_DIR) of the test binaries, then the unit
#         tests and the integration tests of the server and of the ZeroMQ reactor (kernel client).
# Installs nothing beyond scripts/setup.sh. Every sanitizer report goes to a file in <build>/sanitizer-logs/
# (the default options and the suppression files are in tests/sanitizers/): any report fails the run, also
# one from a daemon or kernel whose exit status no test reads. Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode=${1:-all}
shift || true
case "$mode" in asan|tsan|all) ;; *) echo "usage: $0 [asan|tsan|all] [ctest args...]" >&2; exit 2 ;; esac

bash scripts/setup.sh

# Runs ctest in build folder $1 with report files under $1/sanitizer-logs, then fails if ctest failed
# or any process wrote a report. The remaining arguments go to ctest.
run_suite() {
  local dir=$1; shift
  local logs="$root/$dir/sanitizer-logs"
  rm -rf "$logs" && mkdir -p "$logs"
  local rc=0
  (cd "$dir" && env ASAN_OPTIONS="log_path=$logs/asan:log_exe_name=1" UBSAN_OPTIONS="log_path=$logs/ubsan:log_exe_name=1" \
       TSAN_OPTIONS="log_path=$logs/tsan:log_exe_name=1" ctest --output-on-failure --timeout 900 -j2 "$@") || rc=$?
  local reports
  reports=$(find "$logs" -type f | sort)
  if [ -n "$reports" ]; then
    for f in $reports; do echo "==== sanitizer report $f"; cat "$f"; done
    echo "sanitizers: $(echo "$reports" | wc -l) report(s) in $logs" >&2
    rc=1
  fi
  return $rc
}

status=0
if [ "$mode" = asan ] || [ "$mode" = all ]; then
  dir=${KH_ASAN_BUILD_DIR:-build-asan}
  # -O1 keeps the instrumented suite quick; assertions stay on.
  KH_BUILD_DIR=$dir bash scripts/build.sh -DKH_SANITIZE=address,undefined -DKH_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g"
  run_suite "$dir" "$@" || status=1
fi
if [ "$mode" = tsan ] || [ "$mode" = all ]; then
  dir=${KH_TSAN_BUILD_DIR:-build-tsan}
  cmake -S . -B "$dir" -DPython_EXECUTABLE=/usr/bin/python3 -DKH_SANITIZE=thread -DKH_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" >/dev/null
  cmake --build "$dir" --target kh_unit_tests kh_integration_tests kernel-host kernel-host-python -j"$(nproc)"
  # The reactor (contexts/kernel_client) is exercised by the kernel tests, the server by the
  # in-process host_app tests; sandboxes and notebooks add processes, not threads of ours.
  # The server tests start kernel-host-python for Python contexts and run_code_client runs kernel-host
  # (both instrumented too; their reports count).
  unit_suites=$(cd "$dir" && ctest -N -L unit | sed -n 's/^ *Test *#[0-9]*: \([^.]*\)\..*/\1/p' | sort -u | paste -sd'|')
  tsan_tests="^(${unit_suites}|http_api|http_auth|http_shutdown|http_write_timeout|jupyter_api|run_code_client|ipykernel|ipykernel_lifecycle|misbehaving_kernel)\."
  # twenty_kernels_at_once measures capacity (20 kernels answering heartbeats in time), which
  # TSan's slowdown on a loaded 2-core machine breaks without telling anything about threads.
  run_suite "$dir" -R "$tsan_tests" -E 'twenty_kernels_at_once' "$@" || status=1
fi
exit $status
