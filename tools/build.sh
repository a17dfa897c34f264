#!/usr/bin/env bash
# Configure and build Cairn. BUILD_DIR (default build) and extra cmake
# arguments, e.g.: BUILD_DIR=build-asan tools/build.sh -DCAIRN_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
