#!/usr/bin/env python3
"""Tables and pictures from the matrix that benches/compare.sh records.

    python3 benches/plot.py --table benches/results/matrix.jsonl
        prints the tables (medians over the rounds, and ours / std)
    python3 benches/plot.py benches/results/matrix.jsonl docs/bench
        draws throughput.svg, cpu.svg and p99.svg into docs/bench

The pictures need matplotlib (`pip install matplotlib`); the tables need
nothing beyond Python.
"""

import json
import statistics
import sys
from collections import defaultdict

SERVERS = ["ours", "std", "batched", "tokio", "python"]
WINDOWS = [1, 4, 8, 16, 64, 256]
RATES = [20000, 50000, 100000]
CLOSED = [f"window-{w}" for w in WINDOWS] + ["sockets-64", "payload-512", "payload-8192"]
PACED = [f"paced-{r}" for r in RATES]


def load(path):
    """Every run, grouped by (shape, server), in file order."""
    runs = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                runs[(r["shape"], r["server"])].append(r)
    return runs


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def servers_in(runs):
    seen = {server for (_, server) in runs}
    return [s for s in SERVERS if s in seen] + sorted(seen - set(SERVERS))


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
    for shape in CLOSED + PACED:
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
    out += [
        "",
        f"### Paced open loop: server CPU per reply (us) and round trip (us), median of {rounds} rounds",
        "",
        "| shape | server | CPU us/reply | ours / this | p50 | p99 | p99.9 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for shape in PACED:
        ours = median(runs.get((shape, "ours"), []), "cpu_us_per_reply")
        for s in servers:
            r = runs.get((shape, s), [])
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
    if len(argv) == 3 and argv[1] == "--table":
        print(tables(load(argv[2])))
        return 0
    if len(argv) == 3:
        pictures(load(argv[1]), argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
