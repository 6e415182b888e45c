#!/usr/bin/env bash
# Stops processes by pid, never by name: ./stop.sh <pid> [<pid>...]
# SIGTERM, then up to 10 s for each to exit (a zombie counts as exited: the init of a
# container may not reap it), then SIGKILL.
for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "$@"; do
  for _ in $(seq 1 100); do
    st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo gone)
    if [ "$st" = gone ] || [ "$st" = Z ]; then break; fi
    sleep 0.1
  done
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo gone)
  if [ "$st" != gone ] && [ "$st" != Z ]; then kill -KILL "$p" 2>/dev/null || true; fi
done
