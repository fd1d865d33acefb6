#!/usr/bin/env bash
# One command from a fresh Debian 12 clone to a full test run: installs what is missing,
# builds, and runs every test (unit, integration with real kernels, conformance) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh "$@"
cd "${KH_BUILD_DIR:-build}"
# Kernels are real processes: run two tests at a time on this 2-core machine, and print the
# output of any failing test.
ctest --output-on-failure --timeout 600 -j2
