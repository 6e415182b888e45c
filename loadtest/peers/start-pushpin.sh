#!/usr/bin/env bash
# Starts the GRIP backend (127.0.0.1:8090) and Pushpin (subscribers on 127.0.0.1:7999,
# HTTP publish on 127.0.0.1:5561) in the background and prints "<runner-pid> <backend-pid>".
# Stop both with ./stop.sh <runner-pid> <backend-pid> (the runner stops Pushpin's services).
#   PUSHPIN_TUNED=1   turn off the handler's delivery rate limiter (message_rate/message_hwm);
#                     by default Pushpin delivers at most 2,500 messages/s and drops the rest
#   RUN_DIR=DIR       runtime files go to DIR/pushpin (default: $TMPDIR or /tmp, ssegate-peers/pushpin)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="${RUN_DIR:-${TMPDIR:-/tmp}/ssegate-peers}/pushpin"
mkdir -p "$RUN/run" "$RUN/log"
rm -f "$RUN"/log/*.log   # the rate-limited configuration logs a warning for each dropped delivery
# message_rate and message_hwm of 0 or less turn the handler's rate limiter off.
if [ "${PUSHPIN_TUNED:-0}" = 1 ]; then RATE=0; HWM=0; else RATE=2500; HWM=25000; fi
sed -e "s|@RUN@|$RUN|g" -e "s|@MESSAGE_RATE@|$RATE|" -e "s|@MESSAGE_HWM@|$HWM|" \
    "$HERE/pushpin/pushpin.conf.in" > "$RUN/pushpin.conf"
cp "$HERE/pushpin/routes" "$RUN/routes"
ulimit -n "$(ulimit -Hn)"
nohup node "$HERE/pushpin/grip-backend.js" >"$RUN/log/backend.log" 2>&1 &
BPID=$!
nohup pushpin --config "$RUN/pushpin.conf" >"$RUN/log/runner.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  if curl -s -o /dev/null -m 1 "http://127.0.0.1:5561/" && curl -s -o /dev/null -m 1 "http://127.0.0.1:7999/"; then break; fi; sleep 0.1
done
echo "$PID $BPID" > "$RUN/pids"
echo "$PID $BPID"
