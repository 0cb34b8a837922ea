#!/usr/bin/env python3
"""The cost of settled acknowledgement, paired in one run (standard library
only): bench_e2e.py on the same binary, the same machine and the same
workload, with `source.ack: delivered` and with `source.ack: settled`,
alternating, REPEAT times each. Prints, for each figure, min/median/max per
mode and the ratio of the medians (settled / delivered).

    bench/bench_ack.py [--repeat 5] [bench_e2e.py options...]

Figures: end-to-end throughput (changes/s, first commit to the last key's
final state at the receiver), commit-to-target latency p50 and p99 at a
steady rate, and peak RSS.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

FIGURES = [
    ("tp_e2e_rate", "throughput, changes/s", True),
    ("lat_p50_ms", "commit->target p50, ms", False),
    ("lat_p99_ms", "commit->target p99, ms", False),
    ("hwm_kib", "peak RSS, KiB", False),
]


def main():
    argv = sys.argv[1:]
    repeat = 5
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        del argv[i:i + 2]
    here = os.path.dirname(os.path.abspath(__file__))
    got = {"delivered": [], "settled": []}
    for r in range(repeat):
        for mode in ("delivered", "settled"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                cmd = [sys.executable, os.path.join(here, "bench_e2e.py"), "--ack", mode,
                       "--json", out.name, "--seed", str(r + 1)] + argv
                res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if res.returncode != 0:
                    sys.stderr.write(res.stderr.decode(errors="replace"))
                    sys.exit(1)
                with open(out.name) as f:
                    got[mode].append(json.load(f))
            print("run %d/%d %s done" % (r + 1, repeat, mode), file=sys.stderr)
    print("%-26s %-30s %-30s %s" % ("figure", "delivered min/median/max",
                                    "settled min/median/max", "ratio"))
    for key, label, _ in FIGURES:
        cols = []
        meds = []
        for mode in ("delivered", "settled"):
            vals = [f[key] for f in got[mode] if f.get(key) is not None]
            if not vals:
                cols.append("-")
                meds.append(None)
                continue
            meds.append(statistics.median(vals))
            cols.append("%.0f / %.0f / %.0f" % (min(vals), meds[-1], max(vals)))
        ratio = "%.2f" % (meds[1] / meds[0]) if all(meds) else "-"
        print("%-26s %-30s %-30s %s" % (label, cols[0], cols[1], ratio))


if __name__ == "__main__":
    main()
