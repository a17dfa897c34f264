#!/usr/bin/env bash
# Command 2: build (if needed) and run the whole test suite with ctest.
# BUILD_DIR selects the build (default build); extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh "$@"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 --timeout 900
