"""Summarises scripts/peer-bench's raw outputs as a Markdown table.

usage: python3 scripts/peer-bench-table.py OUT RUNS

Reads OUT/streamhouse-N.json and OUT/streamhouse-max-N.json (`streamhouse
bench e2e`), and OUT/s2-N.txt and OUT/s2-max-N.txt (`s2 bench` text), for N
in 1..RUNS; prints each figure's runs and their median.
"""

import json
import re
import statistics
import sys

OUT, RUNS = sys.argv[1], int(sys.argv[2])


def streamhouse(n, suffix=""):
    d = json.load(open(f"{OUT}/streamhouse{suffix}-{n}.json"))
    return {
        "ack_p99": d["ack_latency_ms"]["p99"],
        "e2e_p99": (d.get("e2e_latency_ms") or {}).get("p99"),
        "write": d["write_mibps"],
        "errors": d["produce_errors"],
        "catchup": (d.get("catchup") or {}).get("read_mibps"),
    }


def s2(n, suffix=""):
    text = open(f"{OUT}/s2{suffix}-{n}.txt").read()
    p99 = re.findall(r"^p99\s*:\s*([\d.]+)(m?s)\s+p99\s*:\s*([\d.]+)(m?s)", text, re.M)
    ms = lambda v, unit: float(v) * (1 if unit == "ms" else 1000)
    write = re.search(r"^Write: ([\d.]+) MiB/s", text, re.M)
    catchup = re.search(r"^Catchup: ([\d.]+) MiB/s", text, re.M)
    return {
        "ack_p99": ms(p99[0][0], p99[0][1]) if p99 else None,
        "e2e_p99": ms(p99[0][2], p99[0][3]) if p99 else None,
        "write": float(write.group(1)) if write else None,
        "errors": None,
        "catchup": float(catchup.group(1)) if catchup else None,
    }


def row(label, key, runs_a, runs_b, unit, lower_is_better):
    def cell(runs):
        vals = [r[key] for r in runs]
        got = [v for v in vals if v is not None]
        if not got:
            return "—", None
        med = statistics.median(got)
        shown = " / ".join("—" if v is None else f"{v:,.1f}" for v in vals)
        return f"{shown} (median {med:,.1f})", med

    (ta, ma), (tb, mb) = cell(runs_a), cell(runs_b)
    ahead = "—"
    if ma is not None and mb is not None:
        ahead = "StreamHouse" if (ma < mb) == lower_is_better and ma != mb else "s2-lite"
    return f"| {label} ({unit}) | {ta} | {tb} | {ahead} |"


sh = [streamhouse(n) for n in range(1, RUNS + 1)]
s2r = [s2(n) for n in range(1, RUNS + 1)]
sh_max = [streamhouse(n, "-max") for n in range(1, RUNS + 1)]
s2_max = [s2(n, "-max") for n in range(1, RUNS + 1)]
print("| | StreamHouse | s2-lite | ahead |")
print("|---|---|---|---|")
print(row("ack p99", "ack_p99", sh, s2r, "ms", True))
print(row("end-to-end p99", "e2e_p99", sh, s2r, "ms", True))
print(row("highest sustained write", "write", sh_max, s2_max, "MiB/s", False))
print(row("catch-up read", "catchup", sh, s2r, "MiB/s", False))
errors = sum(r["errors"] or 0 for r in sh + sh_max)
print(f"\nStreamHouse produce errors over all runs: {errors}")
