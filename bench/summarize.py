#!/usr/bin/env python3
"""Per-round ratios of bench/compare.sh's output, and their medians.

    bash bench/compare.sh 5 > rounds.log && python3 bench/summarize.py rounds.log

For each workload both dgm and torch ran in a round, the ratio of that round is dgm's speed over
torch's (time_torch / time_dgm for ms and s, dgm / torch for GFLOP/s): above 1 means dgm is faster.
Prints, per workload, the median over rounds of each side's value, the median of the per-round
ratios, and the worst and best round. An EXTRA_NAME source (a second dgm build) is compared the same way.
"""
import statistics
import sys
from collections import defaultdict


def main(path):
    rounds, header = [], []
    current = None
    try:
        f = open(path, encoding="utf-8", errors="replace")  # a binary or mangled log: its lines are skipped
    except OSError as e:
        sys.exit(f"summarize.py: cannot read {path}: {e.strerror}")
    with f:
        for line in f:
            if line.startswith("# round"):
                current = defaultdict(dict)
                rounds.append(current)
                continue
            if line.startswith("#"):
                header.append(line.rstrip())
                continue
            parts = line.split()
            if current is None or len(parts) < 4:
                continue
            source, name, value, unit = parts[0], parts[1], parts[2], parts[3]
            try:
                number = float(value)
            except ValueError:
                continue
            if 0 < number < float("inf"):  # a ratio needs a positive, finite time or rate on both sides
                current[name][source] = (number, unit)
    print("\n".join(header))
    print(f"# {len(rounds)} rounds; ratio > 1: dgm faster")
    names = sorted({n for r in rounds for n in r})
    sources = sorted({s for r in rounds for n in r for s in r[n]} - {"torch", "peak_flops"})
    print(f"{'workload':34s} {'source':8s} {'median':>9s} {'torch':>9s} {'ratio':>6s} {'worst':>6s} {'best':>6s}")
    for name in names:
        for src in sources:
            mine = [r[name][src][0] for r in rounds if src in r[name]]
            if not mine:
                continue
            unit = next(r[name][src][1] for r in rounds if src in r[name])
            peer = [r[name]["torch"][0] for r in rounds if "torch" in r[name]]
            ratios = []
            for r in rounds:
                if src in r[name] and "torch" in r[name]:
                    a, b = r[name][src][0], r[name]["torch"][0]
                    ratios.append(a / b if unit.startswith("GFLOP") else b / a)
            line = f"{name:34s} {src:8s} {statistics.median(mine):9.1f}"
            if ratios:
                line += f" {statistics.median(peer):9.1f} {statistics.median(ratios):6.2f} {min(ratios):6.2f} {max(ratios):6.2f}"
            print(line + f"  {unit}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py ROUNDS_LOG (the output of bench/compare.sh)")
    main(sys.argv[1])
