#!/usr/bin/env bash
# Side-by-side comparison of udp-greeter with the baselines, all driven by
# `udp-greeter-client bench` on 127.0.0.1 (the baselines are the workspace
# member benches/baselines):
#   ours    udp-greeter --log-level warn (defaults otherwise); for the shapes
#           with per-request work, examples/slow_greeter.rs (the library
#           with a handler that does the work)
#   std     baseline_std     (one thread, recv_from/send_to)
#   handoff baseline_handoff (one thread reads, one answers, a crossbeam
#           channel between them, neither ever waiting awake: the floor of
#           a pipeline's CPU per reply)
#   batched baseline_batched (one thread, recvmmsg/sendmmsg: the "practical
#           limit" reference; Linux only)
#   tokio   baseline_tokio   (two tasks on one Arc<UdpSocket>; per-request
#           work in the task, blocking a runtime thread)
#   tokio-spawn-blocking  baseline_tokio --spawn-blocking (a task per
#           request, the work in spawn_blocking): only the shapes with
#           per-request work
#   threads baseline_threads (N threads each recv_from, work, send_to on
#           one shared socket, so the kernel hands each datagram to a
#           thread already waiting; N = ours' workers): only the shapes
#           with per-request work
#   python  the tutorial's server (where python3 exists); not the shapes with
#           per-request work, which it cannot do
# Servers alternate within each round, so drift on a shared machine hits
# them alike; the figures are medians over the rounds, and ratios are to ours.
#
# The `matrix` phase runs every load shape users bring, each server in turn
# within each round: closed loops of windows 1 to 256 from one socket, 64
# sockets with one request in flight each, payloads of 16, 512 and 8192
# bytes, open loops paced datagram by datagram at 20k, 50k and 100k
# requests/s, and three shapes with per-request work, for which every
# server is restarted with it: block-200 (each request sleeps 200 us, 16
# sockets with one in flight each; ours with 16 workers, threads with 16),
# block-1000 (each request sleeps 1 ms, 64 sockets with one in flight each;
# ours with 64 workers, threads with 64) and spin-50 (each request computes
# 50 us, window 64; ours with 2 workers, threads with 2). Requests leave as
# separate datagrams (`--send batched`). Each run records replies/s, loss,
# the server's CPU per reply and the round-trip percentiles, one JSON object
# a line appended to $OUT/matrix.jsonl, each marked with this run's start
# time ("run"); the tables on stdout are this run's, and benches/plot.py
# draws the pictures from the file.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  BENCH_SECS [5]  WARMUP [1]  WINDOW [64]  PAYLOAD [16]
#   LAT_SECS [3]  CPU_RATE [100000]  CPU_SECS [5]  CPU_ROUNDS [3]
#   MEM_SECS [10]  MEM_RATE [200000]  SWEEP_ROUNDS [3]  SWEEP_SECS [3]
#   MATRIX_ROUNDS [3]  MATRIX_SECS [3]
#   OUT [benches/results; for a quick run, fewer or shorter matrix rounds
#     than these defaults, target/compare]
#   RUN [the start time, 2026-12-01T14:05:09Z]: the run the records belong
#     to; an earlier run's id adds shapes to it
#   SERVERS ["ours std handoff batched tokio tokio-spawn-blocking threads
#     python"]; a server `alt-NAME` runs the binary $ALT_DIR/NAME like ours,
#     to try a change side by side; in the shapes with per-request work it
#     runs $ALT_DIR/slow-NAME (that build's slow_greeter), and sits them
#     out without one
#   SHAPES [all]: the matrix shapes to run, by name (window-8 paced-20000 ...)
#   PHASES ["matrix memory"]; also: unpinned pinned latency cpu sweep
# A quick run: MATRIX_ROUNDS=1 MATRIX_SECS=1 MEM_SECS=2 benches/compare.sh
set -euo pipefail
[ "$(uname -s)" = Linux ] || { echo "error: compare.sh reads /proc: Linux only" >&2; exit 2; }
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
BENCH_SECS=${BENCH_SECS:-5}
WARMUP=${WARMUP:-1}
WINDOW=${WINDOW:-64}
PAYLOAD=${PAYLOAD:-16}
LAT_SECS=${LAT_SECS:-3}
CPU_RATE=${CPU_RATE:-100000}
CPU_SECS=${CPU_SECS:-5}
CPU_ROUNDS=${CPU_ROUNDS:-3}
MEM_SECS=${MEM_SECS:-10}
MEM_RATE=${MEM_RATE:-200000}
SWEEP_ROUNDS=${SWEEP_ROUNDS:-3}
SWEEP_SECS=${SWEEP_SECS:-3}
MATRIX_ROUNDS=${MATRIX_ROUNDS:-3}
MATRIX_SECS=${MATRIX_SECS:-3}
PHASES=${PHASES:-"matrix memory"}
RUN=${RUN:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}

TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release
EX=$TARGET/release/examples
CLIENT=$BIN/udp-greeter-client

# A quick run's figures are noisier: they go under target/ unless asked,
# never among the committed ones.
if [ -z "${OUT:-}" ]; then
  if [ "$MATRIX_ROUNDS" -ge 3 ] && awk -v s="$MATRIX_SECS" 'BEGIN { exit !(s >= 3) }'; then
    OUT=benches/results
  else
    OUT=$TARGET/compare
  fi
fi

PY_SERVER=tests/interop/udp_server.py
read -r -a SERVERS <<<"${SERVERS:-ours std handoff batched tokio tokio-spawn-blocking threads python}"
for s in "${SERVERS[@]}"; do
  case $s in
    ours | std | handoff | batched | tokio | tokio-spawn-blocking | threads | python) ;;
    alt-*)
      [ -x "${ALT_DIR:-}/${s#alt-}" ] ||
        { echo "error: server $s needs the binary \$ALT_DIR/${s#alt-}" >&2; exit 2; } ;;
    *) echo "error: unknown server $s" >&2; exit 2 ;;
  esac
done
if ! command -v python3 >/dev/null; then
  echo "left out: python3 not found, no tutorial server in the comparison" >&2
  SERVERS=($(for s in "${SERVERS[@]}"; do [ "$s" = python ] || printf '%s ' "$s"; done))
fi
if ! command -v taskset >/dev/null; then
  echo "skipped: taskset not found, no pinned runs" >&2
  # Word by word: a substitution would also cut "unpinned".
  PHASES=$(for p in $PHASES; do [ "$p" = pinned ] || printf '%s ' "$p"; done)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: SIGKILL whatever has not gone within 2 s.
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The UDP port the process holds, from its socket inodes and /proc/net/udp:
# every server binds port 0 and this reads what the OS chose.
port_of() {
  local pid=$1 ino hex
  for _ in $(seq 100); do
    for ino in $(find "/proc/$pid/fd" -type l -printf '%l\n' 2>/dev/null |
                 sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p'); do
      hex=$(awk -v ino="$ino" 'NR > 1 && $10 == ino { split($2, a, ":"); print a[2] }' /proc/net/udp)
      if [ -n "$hex" ]; then
        echo $((16#$hex))
        return 0
      fi
    done
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: no UDP port found for pid $pid" >&2
  return 1
}

# takes_part NAME COST: whether server NAME runs when each request costs
# COST (the baselines' flags; empty for nothing). Python cannot block per
# request, and alt-NAME needs its own slow_greeter for that; the
# spawn_blocking variant and the threads are only there for that work.
takes_part() {
  case $1 in
    python) [ -z "$2" ] ;;
    # A variant takes part in the shapes with work when its slow_greeter
    # was built beside it, as slow-NAME.
    alt-*) [ -z "$2" ] || [ -x "${ALT_DIR:-}/slow-${1#alt-}" ] ;;
    tokio-spawn-blocking | threads) [ -n "$2" ] ;;
    *) true ;;
  esac
}

# start NAME [taskset-cpu [COST [POOL]]] -> sets PID and PORT. COST: the
# baselines' flags for each request's work; POOL: how many threads do it,
# the --workers of slow_greeter (which stands in for ours when there is
# work) and the --threads of baseline_threads.
start() {
  local name=$1 cpu=${2:-} cost=${3:-} pool=${4:-} pre=() ours
  [ -n "$cpu" ] && pre=(taskset -c "$cpu")
  if [ -n "$cost" ]; then
    # shellcheck disable=SC2206
    ours=("$EX/slow_greeter" ${pool:+--workers "$pool"} $cost)
  else
    ours=("$BIN/udp-greeter" --log-level warn)
  fi
  # shellcheck disable=SC2086
  case $name in
    ours) "${pre[@]}" "${ours[@]}" --bind 127.0.0.1:0 >"$WORK/$name.log" 2>&1 & ;;
    std) "${pre[@]}" "$BIN/baseline_std" --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    handoff) "${pre[@]}" "$BIN/baseline_handoff" --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    batched) "${pre[@]}" "$BIN/baseline_batched" --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    tokio) "${pre[@]}" "$BIN/baseline_tokio" --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    tokio-spawn-blocking)
      "${pre[@]}" "$BIN/baseline_tokio" --spawn-blocking --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    threads)
      "${pre[@]}" "$BIN/baseline_threads" ${pool:+--threads "$pool"} --bind 127.0.0.1:0 $cost >"$WORK/$name.log" 2>&1 & ;;
    python) "${pre[@]}" python3 "$PY_SERVER" 0 >/dev/null 2>"$WORK/$name.log" & ;;
    # A variant of ours, built elsewhere, for a side-by-side trial of a change.
    alt-*)
      if [ -n "$cost" ]; then
        "${pre[@]}" "$ALT_DIR/slow-${name#alt-}" ${pool:+--workers "$pool"} $cost --bind 127.0.0.1:0 >"$WORK/$name.log" 2>&1 &
      else
        "${pre[@]}" "$ALT_DIR/${name#alt-}" --bind 127.0.0.1:0 --log-level warn >"$WORK/$name.log" 2>&1 &
      fi ;;
    *) echo "error: unknown server: $name" >&2; exit 2 ;;
  esac
  PID=$!
  PIDS+=("$PID")
  PORT=$(port_of "$PID")
}

# start_all [taskset-cpu [COST [POOL]]]: every server that takes part, in
# RUNNING, with ports and PIDs in PORT_OF and PID_OF
declare -A PORT_OF PID_OF
RUNNING=()
start_all() {
  local s
  RUNNING=()
  for s in "${SERVERS[@]}"; do
    takes_part "$s" "${2:-}" || continue
    start "$s" "${1:-}" "${2:-}" "${3:-}"
    PORT_OF[$s]=$PORT PID_OF[$s]=$PID
    RUNNING+=("$s")
  done
}

stop_all() {
  local s
  for s in "${RUNNING[@]}"; do stop "${PID_OF[$s]}"; done
}

stop() {
  local pid kept=()
  kill "$1" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  # Forget it, so cleanup never signals a PID the OS has handed on.
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

# bench PORT [taskset-cpu] ARGS... -> JSON on stdout
bench() {
  local port=$1 cpu=$2 pre=()
  shift 2
  [ -n "$cpu" ] && pre=(taskset -c "$cpu")
  "${pre[@]}" "$CLIENT" bench --server "127.0.0.1:$port" --json "$@"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

machine() {
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "run: $RUN"
}

# throughput LABEL CPU_SERVER CPU_CLIENT
throughput() {
  local label=$1 scpu=$2 ccpu=$3 s r json rps
  start_all "$scpu"
  for r in $(seq "$ROUNDS"); do
    for s in "${RUNNING[@]}"; do
      json=$(bench "${PORT_OF[$s]}" "$ccpu" --seconds "$BENCH_SECS" --warmup "$WARMUP" \
             --window "$WINDOW" --payload "$PAYLOAD")
      rps=$(field "$json" replies_per_s)
      echo "$rps" >>"$WORK/tp-$label-$s"
      echo "  $label round $r $s: $rps replies/s, lost $(field "$json" lost), bad $(field "$json" bad)" >&2
    done
  done
  stop_all
  echo
  echo "### Throughput, $label: replies/s, window $WINDOW, ${PAYLOAD}-byte payload, median of $ROUNDS x ${BENCH_SECS} s"
  echo
  echo "| server | median replies/s | runs | ours / this |"
  echo "| --- | ---: | --- | ---: |"
  local ours
  ours=$(median <"$WORK/tp-$label-ours")
  for s in "${RUNNING[@]}"; do
    local m
    m=$(median <"$WORK/tp-$label-$s")
    echo "| $s | $m | $(tr '\n' ' ' <"$WORK/tp-$label-$s") | $(ratio "$ours" "$m") |"
  done
}

latency() {
  local s r json p50
  start_all
  for r in $(seq "$ROUNDS"); do
    for s in "${RUNNING[@]}"; do
      json=$(bench "${PORT_OF[$s]}" "" --seconds "$LAT_SECS" --warmup 0.5 --window 1 --payload "$PAYLOAD")
      p50=$(field "$json" rtt_p50_us)
      echo "$p50" >>"$WORK/lat-$s"
      echo "$(field "$json" rtt_p99_us)" >>"$WORK/lat99-$s"
      echo "  latency round $r $s: p50 $p50 us" >&2
    done
  done
  stop_all
  echo
  echo "### Round trip at window 1 (${PAYLOAD}-byte payload), median of $ROUNDS x ${LAT_SECS} s"
  echo
  echo "| server | RTT p50 us | RTT p99 us | ours / this (p50) |"
  echo "| --- | ---: | ---: | ---: |"
  local ours
  ours=$(median <"$WORK/lat-ours")
  for s in "${RUNNING[@]}"; do
    local m
    m=$(median <"$WORK/lat-$s")
    echo "| $s | $m | $(median <"$WORK/lat99-$s") | $(ratio "$ours" "$m") |"
  done
}

cpu() {
  local s r json before after replies hz
  hz=$(getconf CLK_TCK)
  start_all
  for r in $(seq "$CPU_ROUNDS"); do
    for s in "${RUNNING[@]}"; do
      before=$(cpu_ticks "${PID_OF[$s]}")
      json=$(bench "${PORT_OF[$s]}" "" --seconds "$CPU_SECS" --warmup 0 --rate "$CPU_RATE" --payload "$PAYLOAD")
      after=$(cpu_ticks "${PID_OF[$s]}")
      replies=$(field "$json" replies)
      # Microseconds of server CPU (user + system) per reply.
      awk -v t=$((after - before)) -v hz="$hz" -v n="$replies" \
        'BEGIN { if (n > 0) printf "%.3f\n", t / hz * 1e6 / n; else print 0 }' >>"$WORK/cpu-$s"
      awk -v t=$((after - before)) -v hz="$hz" -v s="$CPU_SECS" \
        'BEGIN { printf "%.1f\n", t / hz / s * 100 }' >>"$WORK/cpupct-$s"
      echo "$(field "$json" lost)" >>"$WORK/cpulost-$s"
      echo "  cpu round $r $s: $(tail -1 "$WORK/cpu-$s") us/reply, replies $replies" >&2
    done
  done
  stop_all
  echo
  echo "### Server CPU per reply, open loop at $CPU_RATE req/s, median of $CPU_ROUNDS x ${CPU_SECS} s"
  echo
  echo "| server | CPU us/reply | CPU % of one core | lost | ours / this |"
  echo "| --- | ---: | ---: | --- | ---: |"
  local ours
  ours=$(median <"$WORK/cpu-ours")
  for s in "${RUNNING[@]}"; do
    local m
    m=$(median <"$WORK/cpu-$s")
    echo "| $s | $m | $(median <"$WORK/cpupct-$s") | $(tr '\n' ' ' <"$WORK/cpulost-$s") | $(ratio "$ours" "$m") |"
  done
}

memory() {
  local json hwm_before hwm_after rss
  start ours
  hwm_before=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
  json=$(bench "$PORT" "" --seconds "$MEM_SECS" --warmup 0 --rate "$MEM_RATE" --payload 8192 --timeout 0.2)
  hwm_after=$(awk '/^VmHWM/ { print $2 }' "/proc/$PID/status")
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$PID/status")
  stop "$PID"
  echo
  echo "### Peak memory of ours under a ${MEM_SECS} s flood of 8 KiB datagrams (open loop at $MEM_RATE req/s)"
  echo
  echo "| VmHWM before | VmHWM after | VmRSS after | sent | replies | lost | unsent |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| ${hwm_before} KiB | ${hwm_after} KiB | ${rss} KiB | $(field "$json" sent) | $(field "$json" replies) | $(field "$json" lost) | $(field "$json" unsent) |"
}

sweep() {
  local v r json
  start ours
  for v in 16 512 8192; do
    for r in $(seq "$SWEEP_ROUNDS"); do
      json=$(bench "$PORT" "" --seconds "$SWEEP_SECS" --warmup 0.5 --window "$WINDOW" --payload "$v")
      field "$json" replies_per_s >>"$WORK/sp-$v"
      field "$json" rtt_p50_us >>"$WORK/spl-$v"
    done
  done
  for v in 1 8 64 256; do
    for r in $(seq "$SWEEP_ROUNDS"); do
      json=$(bench "$PORT" "" --seconds "$SWEEP_SECS" --warmup 0.5 --window "$v" --payload "$PAYLOAD")
      field "$json" replies_per_s >>"$WORK/sw-$v"
      field "$json" rtt_p50_us >>"$WORK/swl-$v"
    done
  done
  stop "$PID"
  echo
  echo "### Ours: replies/s against payload size (window $WINDOW), median of $SWEEP_ROUNDS x ${SWEEP_SECS} s"
  echo
  echo "| payload bytes | replies/s | RTT p50 us | MB/s of requests |"
  echo "| ---: | ---: | ---: | ---: |"
  for v in 16 512 8192; do
    local m
    m=$(median <"$WORK/sp-$v")
    echo "| $v | $m | $(median <"$WORK/spl-$v") | $(awk -v m="$m" -v v="$v" 'BEGIN { printf "%.1f", m * v / 1e6 }') |"
  done
  echo
  echo "### Ours: replies/s against window (${PAYLOAD}-byte payload), median of $SWEEP_ROUNDS x ${SWEEP_SECS} s"
  echo
  echo "| window | replies/s | RTT p50 us |"
  echo "| ---: | ---: | ---: |"
  for v in 1 8 64 256; do
    echo "| $v | $(median <"$WORK/sw-$v") | $(median <"$WORK/swl-$v") |"
  done
}

# The shapes of the matrix: NAME | the bench arguments that make it | the
# work each request costs (the baselines' flags, for every server) | how
# many threads do it: the workers of slow_greeter, which is ours when there
# is work, and the threads of baseline_threads.
MATRIX_SHAPES=(
  "window-1|--window 1 --payload 16||"
  "window-4|--window 4 --payload 16||"
  "window-8|--window 8 --payload 16||"
  "window-16|--window 16 --payload 16||"
  "window-64|--window 64 --payload 16||"
  "window-256|--window 256 --payload 16||"
  "sockets-64|--window 64 --sockets 64 --payload 16||"
  "payload-512|--window 64 --payload 512||"
  "payload-8192|--window 64 --payload 8192||"
  "paced-20000|--rate 20000 --payload 16||"
  "paced-50000|--rate 50000 --payload 16||"
  "paced-100000|--rate 100000 --payload 16||"
  # A handler waiting on a fast service: a pool of 16 sleepers against 16
  # clients, one request in flight each, where the cost of waking a thread
  # weighs more against the wait.
  "block-200|--window 16 --sockets 16 --payload 16|--block-us 200|16"
  # A handler waiting on a database: a pool of 64 sleepers against 64
  # clients, one request in flight each.
  "block-1000|--window 64 --sockets 64 --payload 16|--block-us 1000|64"
  # A handler that computes: as many workers as cores.
  "spin-50|--window 64 --payload 16|--spin-us 50|2"
)
if [ -n "${SHAPES:-}" ]; then
  kept=()
  for want in $SHAPES; do
    found=
    for shape in "${MATRIX_SHAPES[@]}"; do [ "${shape%%|*}" = "$want" ] && found=1; done
    if [ -z "$found" ]; then
      echo "error: unknown shape $want; the shapes:$(for shape in "${MATRIX_SHAPES[@]}"; do printf ' %s' "${shape%%|*}"; done)" >&2
      exit 2
    fi
  done
  for shape in "${MATRIX_SHAPES[@]}"; do
    for want in $SHAPES; do [ "${shape%%|*}" = "$want" ] && kept+=("$shape"); done
  done
  MATRIX_SHAPES=("${kept[@]}")
fi

matrix() {
  local s r shape name args cost pool scost spool group json before after hz t0 done_runs=0 total=0 cpu left
  local groups=() out=()
  local -A seen
  hz=$(getconf CLK_TCK)
  mkdir -p "$OUT"
  echo "  records: appended to $OUT/matrix.jsonl, run $RUN" >&2
  # The servers are restarted for each kind of work the shapes ask of them,
  # in the order the shapes come.
  for shape in "${MATRIX_SHAPES[@]}"; do
    IFS='|' read -r name args cost pool <<<"$shape"
    for s in "${SERVERS[@]}"; do
      takes_part "$s" "$cost" && total=$((total + MATRIX_ROUNDS))
    done
    group="$cost|$pool"
    [ -n "${seen[$group]:-}" ] || groups+=("$group")
    seen[$group]=1
  done
  t0=$(date +%s)
  for group in "${groups[@]}"; do
    cost=${group%%|*} pool=${group#*|}
    if [ -n "$cost" ]; then
      out=()
      for s in "${SERVERS[@]}"; do takes_part "$s" "$cost" || out+=("$s"); done
      echo "  servers restarted with $cost (ours: slow_greeter --workers $pool $cost)${out[*]:+; left out: ${out[*]}}" >&2
    fi
    start_all "" "$cost" "$pool"
    for r in $(seq "$MATRIX_ROUNDS"); do
      for shape in "${MATRIX_SHAPES[@]}"; do
        IFS='|' read -r name args scost spool <<<"$shape"
        [ "$scost|$spool" = "$group" ] || continue
        for s in "${RUNNING[@]}"; do
          before=$(cpu_ticks "${PID_OF[$s]}")
          # shellcheck disable=SC2086
          json=$(bench "${PORT_OF[$s]}" "" --seconds "$MATRIX_SECS" --warmup 0.5 --send batched \
                 $args 2>/dev/null || true)
          after=$(cpu_ticks "${PID_OF[$s]}")
          done_runs=$((done_runs + 1))
          [ -n "$json" ] || { echo "  [$done_runs/$total] $name $s: no report" >&2; continue; }
          cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$(field "$json" replies)" \
                'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print 0 }')
          # The bench's "server" is the address it drove; the server's own
          # name has a key of its own.
          echo "${json%\}},\"name\":\"$s\",\"run\":\"$RUN\",\"shape\":\"$name\",\"round\":$r,\"cpu_us_per_reply\":$cpu}" \
            >>"$OUT/matrix.jsonl"
          left=$(( ($(date +%s) - t0) * (total - done_runs) / done_runs ))
          printf '  [%d/%d, about %d s left] %s %s: %s replies/s, lost %s, %s us CPU/reply, p99 %s us\n' \
            "$done_runs" "$total" "$left" "$name" "$s" "$(field "$json" replies_per_s)" \
            "$(field "$json" lost)" "$cpu" "$(field "$json" rtt_p99_us)" >&2
        done
      done
    done
    stop_all
  done
  python3 benches/plot.py --table --run "$RUN" "$OUT/matrix.jsonl"
}

echo "building (release)..." >&2
# The baselines are the bins of the workspace member benches/baselines.
cargo build --release --quiet --workspace --bins --examples

machine
for phase in $PHASES; do
  echo "phase: $phase" >&2
  case $phase in
    unpinned) throughput unpinned "" "" ;;
    pinned) throughput pinned 0 1 ;;
    latency) latency ;;
    cpu) cpu ;;
    memory) memory ;;
    sweep) sweep ;;
    matrix) matrix ;;
    *) echo "unknown phase: $phase" >&2; exit 2 ;;
  esac
done
