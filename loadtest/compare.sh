#!/usr/bin/env bash
# Runs the same scenarios against ssegate and each peer (nginx+nchan, Pushpin, the Node
# baseline) in one run, on loopback, and writes docs/PERFORMANCE.md from the results.
#
#   loadtest/compare.sh            the full goals (about 25 minutes, plus the build)
#   loadtest/compare.sh --quick    small N, short runs (about 5 minutes, plus the build)
#
# Options:
#   --only "ssegate nchan"   run these targets only (ssegate nchan nchan-2w pushpin-tuned node;
#                            nchan-2w is nchan with NCHAN_WORKERS=2, as its start script offers;
#                            --quick leaves it out by default)
#   QUIET_WAIT=S             before each case, wait up to S seconds for other work on the
#                            machine to stop (full: 30, quick: 0)
#   --out DIR                where the JSON results go (default /tmp/loadtest-compare-<time>)
#   --doc FILE               the report to write (default docs/PERFORMANCE.md; "-" for none)
#   LOADGEN_WORKERS=N        loadtest worker processes per case (default: one per core)
#
# Each case gets a freshly started server (so memory numbers do not inherit an earlier
# case's heap); servers are started by the scripts in loadtest/peers/ (or the release
# ssegate binary) and stopped by pid. Pushpin runs with PUSHPIN_TUNED=1 (its delivery
# rate limiter off), which the report says. Every loadtest run has its own deadline and
# is wrapped in `timeout` as well.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PEERS="$HERE/peers"
MODE=full
ONLY=""
ONLY_ARG=""
OUT=""
DOC="$ROOT/docs/PERFORMANCE.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --only) ONLY="$2"; ONLY_ARG=" --only \"$2\""; shift ;;
    --out) OUT="$2"; shift ;;
    --doc) DOC="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# --quick leaves nchan-2w out, to stay within a few minutes.
if [ -z "$ONLY" ]; then
  if [ "$MODE" = quick ]; then ONLY="ssegate nchan pushpin-tuned node"; else ONLY="ssegate nchan nchan-2w pushpin-tuned node"; fi
fi
OUT="${OUT:-/tmp/loadtest-compare-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/compare.log"
COMMANDS="$OUT/commands.txt"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac   # cargo builds in $ROOT
# commands.txt goes into the report: it records paths relative to the repository, with
# <results> for the --out directory, so the report holds no paths of this machine.
record() {
  local line="$*"
  line="${line//"$OUT"/<results>}"
  line="${line//"$TARGET_DIR"/target}"
  line="${line//"$ROOT"\//}"
  echo "$line" >> "$COMMANDS"
}
# A second invocation into the same --out (e.g. one more target) adds to the record.
if [ -s "$COMMANDS" ]; then
  record "# --- $(date -u '+%H:%M:%S UTC'): a second invocation into the same directory"
fi
# The invocation, as options rather than as typed, so that no path of this machine shows.
case "$DOC" in
  "$ROOT/docs/PERFORMANCE.md") DOC_ARG="" ;;
  -) DOC_ARG=" --doc -" ;;
  *) DOC_ARG=" --doc <report>" ;;
esac
record "# loadtest/compare.sh$([ "$MODE" = quick ] && echo " --quick")$ONLY_ARG --out <results>$DOC_ARG"
say() { echo "compare: $*" | tee -a "$LOG" >&2; }

# One loadtest worker process per core: a single reader thread reads every delivery in
# turn, so past a few thousand deliveries per event its own queue, not the server, sets
# the latency it measures (seen here: ssegate at 5,000 x 50/s, p99 176 ms with one
# worker, 88 ms with two, same server). The same count is used for every target.
LOADGEN_WORKERS="${LOADGEN_WORKERS:-$(nproc)}"

ulimit -n "$(ulimit -Hn)"   # the hard limit: a process without privileges cannot go above it

# --- build and prerequisites -------------------------------------------------------
say "building ssegate and loadtest (release)"
(cd "$ROOT" && cargo build --release -p ssegate -p loadtest >>"$LOG" 2>&1)
SSEGATE="$TARGET_DIR/release/ssegate"
LOADTEST="$TARGET_DIR/release/loadtest"
if ! command -v nginx >/dev/null || ! command -v pushpin >/dev/null; then
  say "installing the peers (nginx+nchan, pushpin) with $PEERS/setup.sh"
  "$PEERS/setup.sh" >>"$LOG" 2>&1
fi
for port in 8080 8443 8081 7999 5561 8083 8090; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare.sh: port $port on 127.0.0.1 is already in use; stop whatever listens there" >&2
    exit 1
  fi
done

[ -s "$OUT/machine.txt" ] || {
  echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "mode:     $MODE"
  echo "cpus:     $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
  echo "memory:   $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel:   $(uname -sr)"
  echo "os:       $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "nofile:   $(ulimit -n) per process"
  echo "ssegate:  $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)'), $(rustc --version)"
  echo "nginx:    $(nginx -v 2>&1 | sed 's/nginx version: //'), nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'); 'nchan' is 1 worker (start-nchan.sh default), 'nchan-2w' NCHAN_WORKERS=2"
  echo "pushpin:  $(dpkg-query -W -f='${Version}' pushpin 2>/dev/null || echo '?'), PUSHPIN_TUNED=1 (rate limiter off)"
  echo "node:     $(node --version)"
  echo "loadgen:  loadtest on the same machine: $LOADGEN_WORKERS worker processes per case (--workers), a current-thread tokio runtime each"
} > "$OUT/machine.txt"

# --- servers ----------------------------------------------------------------------
SSEGATE_CONF="$OUT/ssegate.yaml"
sed -e 's/^  level: info$/  level: warn/' "$ROOT/gateway.yaml" > "$SSEGATE_CONF"
PIDS=""

start_server() {  # $1 = target; sets PIDS
  case "$1" in
    ssegate)
      nohup "$SSEGATE" --config "$SSEGATE_CONF" >>"$OUT/ssegate.log" 2>&1 &
      PIDS=$!
      for _ in $(seq 1 100); do
        curl -s -o /dev/null -m 1 http://127.0.0.1:8080/healthz && break; sleep 0.1
      done
      if ! curl -s -o /dev/null -m 1 http://127.0.0.1:8080/healthz; then
        echo "compare.sh: ssegate did not start; its log:" >&2; tail -20 "$OUT/ssegate.log" >&2
        PIDS=""; exit 1
      fi
      record "$SSEGATE --config $SSEGATE_CONF &" ;;
    nchan)
      PIDS=$("$PEERS/start-nchan.sh")
      record "$PEERS/start-nchan.sh" ;;
    nchan-2w)
      PIDS=$(NCHAN_WORKERS=2 "$PEERS/start-nchan.sh")
      record "NCHAN_WORKERS=2 $PEERS/start-nchan.sh" ;;
    pushpin-tuned)
      PIDS=$(PUSHPIN_TUNED=1 "$PEERS/start-pushpin.sh")
      record "PUSHPIN_TUNED=1 $PEERS/start-pushpin.sh" ;;
    node)
      PIDS=$("$PEERS/start-node.sh")
      record "$PEERS/start-node.sh" ;;
    *) echo "compare.sh: unknown target $1" >&2; exit 2 ;;
  esac
  sleep 0.5   # let it settle before the baseline sample
}

stop_server() {
  [ -n "$PIDS" ] && "$PEERS/stop.sh" $PIDS
  record "$PEERS/stop.sh $PIDS"
  PIDS=""
  sleep 0.3
}
trap 'if [ -n "$PIDS" ]; then "$PEERS/stop.sh" $PIDS; fi' EXIT

# --- the cases ----------------------------------------------------------------------
# case name | targets ("all" or a list) | loadtest arguments
if [ "$MODE" = quick ]; then
  CASES=(
    "idle-h1|all|--scenario idle --subscribers 2000 --idle-wait 6"
    "idle-h2tls|ssegate|--scenario idle --subscribers 2000 --idle-wait 6 --http2 --sub-url https://127.0.0.1:8443/events/{channel}"
    "fanout-small|all|--scenario fanout --subscribers 300 --rate 10 --duration 5 --drain 5"
    "fanout-base|all|--scenario fanout --subscribers 1000 --rate 10 --duration 6 --drain 5"
    "fanout-base-h2tls|ssegate|--scenario fanout --subscribers 1000 --rate 10 --duration 6 --drain 5 --http2 --sub-url https://127.0.0.1:8443/events/{channel}"
    "fanout-mid|all|--scenario fanout --subscribers 1000 --rate 50 --duration 5 --drain 5"
    "fanout-ceiling|ssegate|--scenario fanout --subscribers 1000 --rate 400 --duration 5 --drain 5"
    "channels|all|--scenario channels --subscribers 400 --channels 20 --rate 100 --duration 5 --drain 5"
    "churn|all|--scenario churn --subscribers 300 --rate 20 --duration 8 --churn-ms 1000-3000 --drain 5"
    "slow|all|--scenario slow --subscribers 200 --slow-percent 20 --payload 8192 --rate 50 --duration 5 --drain 5"
  )
else
  CASES=(
    "idle-h1|all|--scenario idle --subscribers 10000 --idle-wait 15"
    "idle-h2tls|ssegate|--scenario idle --subscribers 10000 --idle-wait 15 --http2 --sub-url https://127.0.0.1:8443/events/{channel}"
    "fanout-small|all|--scenario fanout --subscribers 1000 --rate 10 --duration 20"
    "fanout-base|all|--scenario fanout --subscribers 5000 --rate 10 --duration 30"
    "fanout-base-h2tls|ssegate|--scenario fanout --subscribers 5000 --rate 10 --duration 30 --http2 --sub-url https://127.0.0.1:8443/events/{channel}"
    "fanout-mid|all|--scenario fanout --subscribers 5000 --rate 50 --duration 15"
    "fanout-high|all|--scenario fanout --subscribers 5000 --rate 100 --duration 15"
    "fanout-ceiling|ssegate|--scenario fanout --subscribers 5000 --rate 200 --duration 10"
    "fanout-large|all|--scenario fanout --subscribers 18000 --rate 10 --duration 20"
    "channels|all|--scenario channels --subscribers 2000 --channels 20 --rate 200 --duration 20"
    "churn|all|--scenario churn --subscribers 1000 --rate 20 --duration 30"
    "slow|all|--scenario slow --subscribers 500 --slow-percent 20 --payload 8192 --rate 50 --duration 20"
  )
fi

# Other work on the machine (builds, test suites) distorts every number. Before each
# case, wait (at most QUIET_WAIT seconds) until the machine is nearly idle; each result
# records how much CPU other processes took anyway, and the report flags noisy runs.
QUIET_WAIT="${QUIET_WAIT:-$([ "$MODE" = quick ] && echo 0 || echo 30)}"
busy_percent() {  # CPU used by everything over one second, in % of one core
  local a b
  a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  echo "$a $b" | awk '{printf "%d", ($3-$1)}'   # ticks per second = % of one core
}
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local waited=0 busy
  busy=$(busy_percent)
  while [ "$busy" -gt 15 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
    sleep 1; waited=$((waited + 2)); busy=$(busy_percent)
  done
  if [ "$busy" -gt 15 ]; then
    say "  the machine is busy with other work (${busy}% of a core) — this case will be noisy"
  fi
}

format_of() { case "$1" in pushpin*) echo pushpin ;; nchan*) echo nchan ;; *) echo "$1" ;; esac; }
ramp_of() { case "$1" in pushpin*) echo 32 ;; *) echo 64 ;; esac; }

STARTED=$(date +%s)
for target in $ONLY; do
  for entry in "${CASES[@]}"; do
    IFS='|' read -r case targets args <<<"$entry"
    if [ "$targets" != all ] && ! [[ " $targets " == *" $target "* ]]; then continue; fi
    wait_quiet
    start_server "$target"
    say "$target / $case (server pids: $PIDS)"
    cmd="$LOADTEST $args --format $(format_of "$target") --label $target --case $case --connect-concurrency $(ramp_of "$target") --workers $LOADGEN_WORKERS --server-pid ${PIDS// /,} --json $OUT/${target}__${case}.json --quiet"
    record "$cmd"
    # shellcheck disable=SC2086
    if ! timeout --kill-after=10 1200 $cmd >>"$OUT/${target}__${case}.txt" 2>&1; then
      say "  (finished with problems; see $OUT/${target}__${case}.txt)"
    fi
    grep -E 'verdict|latency from sched|server  ' "$OUT/${target}__${case}.txt" | sed 's/^/    /' | tee -a "$LOG" >&2 || true
    stop_server
  done
done
say "all cases done in $(( $(date +%s) - STARTED )) s; results in $OUT"

if [ "$DOC" != "-" ]; then
  "$LOADTEST" summarize --dir "$OUT" --out "$DOC" --mode "$MODE"
  say "wrote $DOC"
fi
