#!/usr/bin/env bash
# Configures and builds kernel-host into build/ (executables in build/bin/).
# Extra arguments go to CMake's configure step, e.g. -DKH_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${KH_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DPython_EXECUTABLE=/usr/bin/python3 "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
