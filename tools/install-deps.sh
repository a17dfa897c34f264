#!/usr/bin/env bash
# Install the Debian 12 packages Cairn needs to build, run and test
# (skipping what is already there). Run as root. Node and npm build Cairn
# Studio's bundle (ui/); Debian's nodejs and npm are installed only when the
# commands are missing, so that another node (NodeSource's, which bundles
# its own npm and conflicts with Debian's npm package) is left alone.
# Chromium runs the UI's end-to-end test (tests/e2e/).
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev curl openssl
  libzmq3-dev libmsgpack-dev libyaml-dev libjansson-dev libsqlite3-dev
  liburing-dev libsodium-dev libmicrohttpd-dev
  python3 python3-zmq python3-msgpack python3-prometheus-client
  libxgboost-dev python3-xgboost python3-sklearn python3-pandas openmpi-bin wrk
  chromium
)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
