#!/usr/bin/env bash
# Command 1: install what is missing, build, and start Cairn on its embedded
# default (cairnd on tcp://127.0.0.1:7780, its HTTP gateway on
# http://127.0.0.1:7790, state in ./var), ready to use.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
state=${CAIRN_STATE:-$PWD/var}
# The state is private: cairnd runs with umask 077 (its files 0600, its
# directories 0700), and so does this script for the log it writes. A state
# dir left open by an older setup.sh (0755, its database 0644) is closed.
umask 077
mkdir -p "$state"
find "$state" -perm /077 ! -type l -exec chmod go= {} + 2>/dev/null || true
pidfile=$state/cairnd.pid # written by cairnd itself, removed when it exits
if [ -f "$pidfile" ] && old=$(cat "$pidfile" 2>/dev/null) && kill -0 "$old" 2>/dev/null; then
  echo "setup: cairnd is already running (pid $old); restarting it"
  kill "$old"
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
nohup build/bin/cairnd --state "$state" >"$state/cairnd.log" 2>&1 &
pid=$!
# Ready means every plugin up, not just the kernel answering: a plugin may
# still be starting (opening its database, sweeping temp files) right after.
for _ in $(seq 300); do
  if build/bin/cairn --ttl 1000 health >/dev/null 2>&1; then
    build/bin/cairn health
    echo "setup: Cairn is running (pid $pid, log $state/cairnd.log)."
    echo "setup: the bus on ${CAIRN_ENDPOINT:-tcp://127.0.0.1:7780}, HTTP on http://${CAIRN_HTTP:-127.0.0.1:7790}" \
      "(MLflow: MLFLOW_TRACKING_URI=http://${CAIRN_HTTP:-127.0.0.1:7790})"
    echo "setup: try: build/bin/cairn services    stop: kill \$(cat $pidfile)"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "setup: Cairn is not ready (cairnd exited, or a plugin is not up after 30 s); its health and log:" >&2
build/bin/cairn health >&2 || true
cat "$state/cairnd.log" >&2
exit 1
