#!/usr/bin/env bash
# Starts nginx + nchan on 127.0.0.1:8081 in the background and prints the master's pid.
# Stop it with ./stop.sh <pid> (SIGTERM to the master stops its workers).
#   NCHAN_WORKERS=2   worker processes (default 1)
#   NCHAN_TLS=1       also listen with TLS (HTTP/1.1, self-signed for localhost) on 127.0.0.1:8444
#   RUN_DIR=DIR       runtime files go to DIR/nchan (default: $TMPDIR or /tmp, ssegate-peers/nchan)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="${RUN_DIR:-${TMPDIR:-/tmp}/ssegate-peers}/nchan"
mkdir -p "$RUN/logs" "$RUN/tmp"
CONF="$RUN/nginx.conf"
sed "s/^worker_processes 1;/worker_processes ${NCHAN_WORKERS:-1};/" "$HERE/nchan/nginx.conf" > "$CONF"
rm -f "$RUN/tls-listen.conf"
if [ "${NCHAN_TLS:-0}" = 1 ]; then
  [ -f "$RUN/tls.key" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
      -keyout "$RUN/tls.key" -out "$RUN/tls.crt" >/dev/null 2>&1
  printf 'listen 127.0.0.1:8444 ssl backlog=4096;\nssl_certificate %s;\nssl_certificate_key %s;\nssl_session_cache off;\nssl_session_tickets off;\n' \
      "$RUN/tls.crt" "$RUN/tls.key" > "$RUN/tls-listen.conf"
fi
ulimit -n "$(ulimit -Hn)"   # as many connections as the hard open-files limit allows
nginx -t -p "$RUN/" -c "$CONF" >/dev/null 2>&1 || { nginx -t -p "$RUN/" -c "$CONF"; exit 1; }
nohup nginx -p "$RUN/" -c "$CONF" >"$RUN/logs/stdout.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do
  if curl -s -o /dev/null -m 1 "http://127.0.0.1:8081/nchan_status"; then break; fi; sleep 0.1
done
echo "$PID" > "$RUN/master.pid"
echo "$PID"
