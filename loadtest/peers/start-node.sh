#!/usr/bin/env bash
# Starts the hand-written Node.js SSE server on 127.0.0.1:8083 in the background and
# prints its pid. Stop it with ./stop.sh <pid>.
#   RUN_DIR=DIR   its log goes to DIR/node (default: $TMPDIR or /tmp, ssegate-peers/node)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="${RUN_DIR:-${TMPDIR:-/tmp}/ssegate-peers}/node"
mkdir -p "$RUN"
ulimit -n "$(ulimit -Hn)"
nohup node "$HERE/node/sse-server.js" >"$RUN/stdout.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do
  if curl -s -o /dev/null -m 1 "http://127.0.0.1:8083/"; then break; fi; sleep 0.1
done
echo "$PID" > "$RUN/pid"
echo "$PID"
