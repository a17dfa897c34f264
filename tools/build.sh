#!/usr/bin/env bash
# Configure and build Cairn. BUILD_DIR (default build) and extra cmake
# arguments, e.g.: BUILD_DIR=build-asan tools/build.sh -DCAIRN_SANITIZE=ON
# Then Cairn Studio's bundle (ui/, docs/STUDIO.md), when node and npm are
# here: ui/node_modules from the lockfile (again only when it changed), the
# bundle into BUILD/share/cairn/ui (where the gateway looks, beside bin/;
# never into the source tree), itself skipped when nothing in ui/ changed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
if command -v node >/dev/null && command -v npm >/dev/null; then
  stamp=ui/node_modules/.cairn-package-lock.json
  if ! cmp -s ui/package-lock.json "$stamp"; then
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
    cp ui/package-lock.json "$stamp"
  fi
  node ui/build.mjs "$build/share/cairn/ui"
else
  echo "build: no node or npm: Cairn Studio (the web UI) is not built;" \
    "tools/install-deps.sh installs them" >&2
fi
