#!/usr/bin/env bash
# Restarts of the shipped units under a paced load, under a real systemd
# (Debian bookworm, systemd 252, in a systemd-nspawn container), counted
# exactly and each restart's gap split into its parts:
#
#   benches/restart.sh [RATE] [RESTARTS]          # [20000] [3]
#
# The units of contrib/ are installed as shipped (the socket on a free port
# of 127.0.0.1 by a drop-in) with the release binary; the load is
# `udp-greeter-client bench --rate RATE --timeout 1 --warmup 0`; each
# `systemctl restart` comes 1.2 s after the last returned. Printed: the
# bench's report; each process's final counters; the exact count (every
# request sent was received once by one of the processes, or dropped by
# the kernel at the socket, and every one received has a fate); and, with
# perf, each gap from the kernel's own tracepoints (benches/restart_gap.py):
# the stop (SIGTERM to the old process gone), ExecStop's wait (to the
# stop's shell gone), systemd (to the new process forked), the exec (the
# sandbox, to the exec of the binary), the ready (to the first read), and
# the gap (last reply of the old process to the first of the new). The
# longest round trip (the bench's rtt max) is a gap and the catch-up of
# the backlog behind it.
#
# Needs root, systemd-nspawn and nsenter, the Debian root the systemd tests
# build once (`cargo test --test tests systemd_live -- --include-ignored`
# makes /var/lib/machines/udp-greeter-bookworm), the release binaries
# (`cargo build --release`), and perf for the gap's parts.
#
# Environment: ACTION [restart] (or reload); UNITS [contrib] the folder of
# the two units; BIN [target/release]; DROPIN text for a drop-in of the
# service ('[Service]\nEnvironment=UDP_GREETER_QUEUE_FULL=drop\n', say);
# OUT [target/restart/RATE-TIME] where the run's files go.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${1:-20000}
RESTARTS=${2:-3}
ACTION=${ACTION:-restart}
UNITS=${UNITS:-contrib}
BIN=${BIN:-target/release}
ROOT=/var/lib/machines/udp-greeter-bookworm
OUT=${OUT:-target/restart/$RATE-$(date +%Y%m%dT%H%M%S)}
[ -d "$ROOT" ] || { echo "no $ROOT: run the systemd_live tests once" >&2; exit 2; }
[ -x "$BIN/udp-greeter" ] || { echo "no $BIN/udp-greeter: cargo build --release" >&2; exit 2; }
mkdir -p "$OUT"

port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As a host's systemd, the container's may force ReceiveBuffer= past
# net.core.rmem_max: nspawn drops CAP_NET_ADMIN unless told.
systemd-nspawn --quiet --register=no --keep-unit --settings=no \
  --capability=CAP_NET_ADMIN --link-journal=no --volatile=overlay \
  --console=passive --machine="udpg-restart-$$" -D "$ROOT" --boot \
  >"$OUT/nspawn.log" 2>&1 &
nspawn=$!
leader=
stop_container() {
  [ -n "$leader" ] && nsenter -t "$leader" -a -- systemctl poweroff --no-block >/dev/null 2>&1
  for _ in $(seq 300); do kill -0 "$nspawn" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$nspawn" 2>/dev/null || true
}
trap stop_container EXIT

# The container's init: the child of nspawn that is PID 1 of its own.
for _ in $(seq 600); do
  for c in $(cat /proc/"$nspawn"/task/*/children 2>/dev/null); do
    grep -q '^NSpid:.*[[:space:]]1$' /proc/"$c"/status 2>/dev/null && leader=$c
  done
  [ -n "$leader" ] && break
  sleep 0.05
done
[ -n "$leader" ] || { echo "nspawn started no init: $(cat "$OUT/nspawn.log")" >&2; exit 1; }
echo "$leader" >"$OUT/leader"
inside() { nsenter -t "$leader" -a -- "$@"; }
put() { inside sh -c 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"' sh "$1" "$2"; }
for _ in $(seq 600); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.1
done

put /usr/local/bin/udp-greeter 755 <"$BIN/udp-greeter"
put /etc/systemd/system/udp-greeter.service 644 <"$UNITS/udp-greeter.service"
put /etc/systemd/system/udp-greeter.socket 644 <"$UNITS/udp-greeter.socket"
printf '[Socket]\nListenDatagram=\nListenDatagram=127.0.0.1:%s\n' "$port" |
  put /etc/systemd/system/udp-greeter.socket.d/bench.conf 644
if [ -n "${DROPIN:-}" ]; then
  printf '%b' "$DROPIN" | put /etc/systemd/system/udp-greeter.service.d/bench.conf 644
fi
inside systemctl daemon-reload

seconds=$(python3 -c "print(1 + $RESTARTS * 1.2 + 1.5)")
perf=
if command -v perf >/dev/null; then
  # The server's own reads and replies, the signals, forks, execs and
  # exits, on the monotonic clock the journal also keeps.
  perf record -q -k monotonic -a -m 4096 -o "$OUT/perf.data" \
    -e sched:sched_process_exec -e sched:sched_process_exit \
    -e sched:sched_process_fork -e signal:signal_generate \
    -e syscalls:sys_exit_recvmmsg --filter 'ret > 0 && comm == "receiver"' \
    -e syscalls:sys_exit_sendmmsg --filter 'ret > 0 && comm ~ "worker-*"' \
    -e syscalls:sys_exit_sendmsg --filter 'ret > 0 && comm ~ "worker-*"' \
    -- sleep "$(python3 -c "print($seconds + 4)")" 2>"$OUT/perf.err" &
  perf=$!
  sleep 0.5
fi
inside systemctl start udp-greeter.socket udp-greeter
"$BIN/udp-greeter-client" bench --server "127.0.0.1:$port" --rate "$RATE" \
  --seconds "$seconds" --warmup 0 --timeout 1 --json >"$OUT/bench.json" &
bench=$!
sleep 1
for _ in $(seq "$RESTARTS"); do
  inside systemctl "$ACTION" udp-greeter
  sleep 1.2
done
wait "$bench"
inside systemctl stop udp-greeter 2>/dev/null
[ -n "$perf" ] && { wait "$perf" || true; }
inside journalctl -o short-precise --no-pager -u udp-greeter >"$OUT/journal.txt"
inside journalctl -o short-monotonic --no-pager >"$OUT/journal-mono.txt"

echo "$(date -u +%Y-%m-%dT%H:%MZ) benches/restart.sh $RATE $RESTARTS (ACTION=$ACTION UNITS=$UNITS${DROPIN:+ DROPIN})"
cat "$OUT/bench.json"
python3 benches/restart_gap.py "$OUT"
