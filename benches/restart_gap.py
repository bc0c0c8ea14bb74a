#!/usr/bin/env python3
"""What a run of benches/restart.sh found, from the files in its folder.

    python3 benches/restart_gap.py OUT

Prints each process's final counters and the exact count of the run, then,
when the run has perf's record of the kernel's tracepoints (perf.data), each
gap between two processes split into its parts, in milliseconds.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

COUNTS = ("received", "socket_dropped", "replied", "dropped_queue_full")


def finals(out):
    """Each process's final counters, in the order they stopped."""
    rows = []
    for line in (out / "journal.txt").read_text().splitlines():
        m = re.search(r"udp-greeter\[(\d+)\]: .*stats: (received=.*)", line)
        if m:
            fields = dict(f.split("=") for f in m.group(2).split())
            rows.append((m.group(1), {k: int(v) for k, v in fields.items()}))
    return rows


def count(out):
    """The counters of every process, and the run's exact count."""
    report = json.loads((out / "bench.json").read_text())
    rows = finals(out)
    for pid, c in rows:
        print(f"process {pid}: " + " ".join(f"{k}={c[k]}" for k in COUNTS))
    received = sum(c["received"] for _, c in rows)
    queue = sum(c["dropped_queue_full"] for _, c in rows)
    before = [int(n) for n in re.findall(r"had dropped (\d+)", (out / "journal.txt").read_text())]
    # The kernel's count for the socket, since it was made: what the last
    # process found at its start, and what it counted itself.
    socket = (before[-1] if before else 0) + (rows[-1][1]["socket_dropped"] if rows else 0)
    sent = report["sent"]
    print(
        f"sent {sent}: received {received} by {len(rows)} processes + dropped at the socket "
        f"{socket} = {received + socket} ({'exact' if received + socket == sent else 'NOT exact'}); "
        f"dropped at the queues {queue}; replies {report['replies']}, dropped at the client "
        f"{report['client_dropped']}, lost {report['lost']}, "
        f"late {report['late']}, rtt p99 {report['rtt_p99_us'] / 1000:.1f} ms, "
        f"max {report['rtt_max_us'] / 1000:.1f} ms"
    )


LINE = re.compile(r"^\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$")


def events(out):
    text = subprocess.run(
        ["perf", "script", "-i", str(out / "perf.data"), "-F", "comm,pid,tid,time,event,trace"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            comm, pid, tid, t, name, rest = m.groups()
            yield float(t), comm, int(pid), int(tid), name.split(":")[-1], rest


class Trace:
    """The container's processes in perf's record: the servers, their
    reads and replies, the stop's shells."""

    def __init__(self, out):
        self.ev = list(events(out))
        inside = {int((out / "leader").read_text())}
        for _, _, pid, _, name, rest in self.ev:
            if name == "sched_process_fork" and pid in inside:
                inside.add(int(re.search(r"child_pid=(\d+)", rest).group(1)))
        self.servers = [
            (pid, t) for t, _, pid, _, name, rest in self.ev
            if name == "sched_process_exec" and pid in inside and rest.split()[0].endswith("/udp-greeter")
        ]
        self.shells = {}
        for t, _, pid, tid, name, rest in self.ev:
            if name == "sched_process_exec" and pid in inside and "filename=/bin/sh" in rest:
                self.shells[pid] = [t, None]
            elif name == "sched_process_exit" and pid in self.shells and tid == pid:
                self.shells[pid][1] = t

    def process(self, p):
        d = {"reads": [], "replies": [], "exit": None, "term": None, "fork": None}
        for t, comm, pid, tid, name, rest in self.ev:
            if pid == p and name == "sys_exit_recvmmsg":
                d["reads"].append((t, int(re.search(r"0x([0-9a-f]+)", rest).group(1), 16)))
            elif pid == p and name in ("sys_exit_sendmmsg", "sys_exit_sendmsg"):
                d["replies"].append(t)
            elif pid == p and name == "sched_process_exit" and tid == p:
                d["exit"] = t
            elif name == "signal_generate" and f"pid={p} " in rest and "sig=15" in rest:
                d["term"] = d["term"] or t
            elif name == "sched_process_fork" and rest.endswith(f"child_pid={p}"):
                d["fork"] = t
        return d

    def shell_exit(self, at):
        """The exit of the shell (ExecStop) that was running at `at`."""
        for start, end in self.shells.values():
            if end and start <= at <= end:
                return end
        return None


def gaps(out):
    trace = Trace(out)
    ms = lambda a, b: f"{(b - a) * 1000:6.1f}" if a is not None and b is not None else "     ?"
    procs = [(pid, trace.process(pid)) for pid, _ in trace.servers]
    execs = dict(trace.servers)
    print("gap (ms):  stop  ExecStop  systemd   exec  ready | last reply to first")
    for (old, o), (new, n) in zip(procs, procs[1:]):
        if not o["term"] or not n["reads"] or not o["replies"]:
            continue
        shell = trace.shell_exit(o["term"])
        first_read, first_reply = n["reads"][0][0], n["replies"][0] if n["replies"] else None
        print(
            f"{old}->{new}: {ms(o['term'], o['exit'])}   {ms(o['exit'], shell)}   "
            f"{ms(shell, n['fork'])} {ms(n['fork'], execs[new])} {ms(execs[new], first_read)} | "
            f"{ms(o['replies'][-1], first_reply)}"
        )


def main():
    out = Path(sys.argv[1])
    count(out)
    if (out / "perf.data").exists():
        gaps(out)


if __name__ == "__main__":
    main()
