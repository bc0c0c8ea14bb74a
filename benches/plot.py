#!/usr/bin/env python3
"""Tables and pictures from the matrix that benches/compare.sh records.

    python3 benches/plot.py --table benches/results/matrix.jsonl
        prints the tables (medians over the rounds, and ours / std)
    python3 benches/plot.py benches/results/matrix.jsonl docs/bench
        draws throughput.svg, cpu.svg and p99.svg into docs/bench
    python3 benches/plot.py --runs benches/results/matrix.jsonl
        lists the runs in the file: id, records, shapes

compare.sh appends to the file, each record marked with its run (its start
time, "run":"2026-12-01T14:05:09Z"), so both read one run: by default the
latest (the run of the file's last record). --run RUN, given once or more,
picks others: a run's id, `latest`, `all`, or `unmarked` (the records
written before runs were marked, which count as one run).

The pictures need matplotlib (`pip install matplotlib`); the tables need
nothing beyond Python.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

SERVERS = ["ours", "std", "handoff", "batched", "tokio", "tokio-spawn-blocking", "threads", "python"]
WINDOWS = [1, 4, 8, 16, 64, 256]
RATES = [20000, 50000, 100000]
CLOSED = [f"window-{w}" for w in WINDOWS] + ["sockets-64", "payload-512", "payload-8192"]
# Per-request work, where a server's answer to blocking shows.
POOL = ["block-200", "block-1000", "spin-50"]
PACED = [f"paced-{r}" for r in RATES]
UNMARKED = "unmarked"


def name_of(record):
    """The server's name. Records from before it had a key of its own carry
    it as a second "server" key (after the bench's address), and json keeps
    the last of duplicate keys."""
    return record.get("name", record["server"])


def read(path):
    """Every record in the file, in file order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_of(record):
    return record.get("run", UNMARKED)


def select(records, wanted):
    """The records of the runs asked for (`latest` when none is)."""
    wanted = set(wanted or ["latest"])
    if "all" in wanted:
        return records
    if "latest" in wanted and records:
        wanted.add(run_of(records[-1]))
    picked = [r for r in records if run_of(r) in wanted]
    if not picked:
        known = ", ".join(dict.fromkeys(run_of(r) for r in records)) or "none"
        raise SystemExit(f"error: no records of run {' '.join(sorted(wanted))} (runs: {known})")
    return picked


def group(records):
    """The records grouped by (shape, server), in file order."""
    runs = defaultdict(list)
    for r in records:
        runs[(r["shape"], name_of(r))].append(r)
    return runs


def list_runs(records):
    shapes = defaultdict(dict)
    counts = defaultdict(int)
    for r in records:
        shapes[run_of(r)][r["shape"]] = None
        counts[run_of(r)] += 1
    return "\n".join(
        f"{run}: {counts[run]} records; {' '.join(shapes[run])}" for run in shapes
    )


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def servers_in(runs):
    seen = {server for (_, server) in runs}
    return [s for s in SERVERS if s in seen] + sorted(seen - set(SERVERS))


def shapes_in(runs, among=None):
    """The shapes that ran, in the matrix's order, unknown ones last;
    only those `among` when given."""
    seen = {shape for (shape, _) in runs}
    known = CLOSED + POOL + PACED
    order = [s for s in known if s in seen] + sorted(seen - set(known))
    return [s for s in order if among is None or s in among]


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def tables(runs):
    servers = servers_in(runs)
    rounds = max((len(v) for v in runs.values()), default=0)
    out = [
        "",
        f"### Replies/s by load shape, median of {rounds} rounds",
        "",
        "| shape | " + " | ".join(servers) + " | ours / std | lost (ours, std) |",
        "| --- | " + " | ".join("---:" for _ in servers) + " | ---: | --- |",
    ]
    for shape in shapes_in(runs):
        m = {s: median(runs.get((shape, s), []), "replies_per_s") for s in servers}
        lost = [
            str(sum(r["lost"] for r in runs.get((shape, s), [])))
            for s in ("ours", "std")
        ]
        out.append(
            f"| {shape} | "
            + " | ".join(fmt(m[s]) for s in servers)
            + f" | {ratio(m.get('ours'), m.get('std'))} | {', '.join(lost)} |"
        )
    pool = shapes_in(runs, POOL + [s for (s, _) in runs if s.startswith(("block-", "spin-"))])
    if pool:
        out += [
            "",
            f"### Per-request work: replies/s, server CPU per reply (us) and round trip (us), median of {rounds} rounds",
            "",
            "| shape | server | replies/s | ours / this | CPU us/reply | p50 | p99 | lost |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for shape in pool:
            ours = median(runs.get((shape, "ours"), []), "replies_per_s")
            for s in servers:
                r = runs.get((shape, s), [])
                if not r:
                    continue
                rps = median(r, "replies_per_s")
                out.append(
                    f"| {shape} | {s} | {fmt(rps)} | {ratio(ours, rps)} | "
                    f"{fmt(median(r, 'cpu_us_per_reply'), 2)} | "
                    f"{fmt(median(r, 'rtt_p50_us'), 1)} | {fmt(median(r, 'rtt_p99_us'), 1)} | "
                    f"{sum(x['lost'] for x in r)} |"
                )
    paced = shapes_in(runs, PACED + [s for (s, _) in runs if s.startswith("paced-")])
    if paced:
        out += [
            "",
            f"### Paced open loop: server CPU per reply (us) and round trip (us), median of {rounds} rounds",
            "",
            "| shape | server | CPU us/reply | ours / this | p50 | p99 | p99.9 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for shape in paced:
            ours = median(runs.get((shape, "ours"), []), "cpu_us_per_reply")
            for s in servers:
                r = runs.get((shape, s), [])
                if not r:
                    continue
                cpu = median(r, "cpu_us_per_reply")
                out.append(
                    f"| {shape} | {s} | {fmt(cpu, 2)} | {ratio(ours, cpu)} | "
                    f"{fmt(median(r, 'rtt_p50_us'), 1)} | {fmt(median(r, 'rtt_p99_us'), 1)} | "
                    f"{fmt(median(r, 'rtt_p999_us'), 1)} |"
                )
    return "\n".join(out)


def pictures(runs, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Fixed fonts and no timestamps, so an unchanged matrix draws the same file.
    plt.rcParams["svg.hashsalt"] = "udp-greeter"
    plt.rcParams["svg.fonttype"] = "none"
    servers = servers_in(runs)

    def draw(name, xs, shapes, key, xlabel, ylabel, title, logx=False, scale=1.0):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for s in servers:
            ys = [median(runs.get((shape, s), []), key) for shape in shapes]
            points = [(x, y * scale) for x, y in zip(xs, ys) if y is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=s)
        if logx:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(x) for x in xs])
        else:
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{x // 1000}k" for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(f"{folder}/{name}", metadata={"Date": None})
        plt.close(fig)

    draw(
        "throughput.svg",
        WINDOWS,
        [f"window-{w}" for w in WINDOWS],
        "replies_per_s",
        "requests in flight (window), one client socket",
        "thousand replies/s",
        "Replies/s against window (16-byte payloads)",
        logx=True,
        scale=1e-3,
    )
    draw(
        "cpu.svg",
        RATES,
        PACED,
        "cpu_us_per_reply",
        "requests/s, paced datagram by datagram",
        "server CPU per reply (us)",
        "Server CPU per reply against paced rate",
    )
    draw(
        "p99.svg",
        RATES,
        PACED,
        "rtt_p99_us",
        "requests/s, paced datagram by datagram",
        "round trip p99 (us)",
        "Round-trip p99 against paced rate",
    )


def main(argv):
    parser = argparse.ArgumentParser(
        prog="plot.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", action="append", metavar="RUN", help="the run(s) to read")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--table", action="store_true", help="print the tables")
    what.add_argument("--runs", action="store_true", help="list the runs")
    parser.add_argument("file")
    parser.add_argument("folder", nargs="?", help="where to draw the pictures")
    args = parser.parse_args(argv[1:])
    if (args.table or args.runs) == (args.folder is not None):
        parser.print_usage(sys.stderr)
        return 2
    records = read(args.file)
    if args.runs:
        print(list_runs(records))
        return 0
    runs = group(select(records, args.run))
    if args.table:
        print(tables(runs))
    else:
        pictures(runs, args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
