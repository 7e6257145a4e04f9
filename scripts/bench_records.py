"""Benchmark: cost of the per-step record write path (json.dumps + buffered write + flush).

Times `recorder.RankRecorder.write` on a realistic step record, N times in a row, in blocks,
and prints the median per-call cost against the target (<= 0.1 ms per step).

usage: python scripts/bench_records.py [--n 20000] [--blocks 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from minicluster.rank.recorder import RankRecorder

TARGET_MS = 0.1

RECORD = {
    "type": "step",
    "step": 12345,
    "warmup": False,
    "step_time_ms": 15.234567,
    "fwd_ms": 2.123456,
    "bwd_ms": 9.876543,
    "opt_ms": 1.234567,
    "compute_ms": 7.654321,
    "comm_ms": 6.543210,
    "exposed_comm_ms": 5.432109,
    "buckets": 1,
    "comm_bytes": 6340648,
    "loss": 2.302585092994046,
    "t_unix_s": 1795422991.6597285,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="writes per block")
    p.add_argument("--blocks", type=int, default=10)
    a = p.parse_args()
    per_call_us = []
    with tempfile.TemporaryDirectory() as out:
        for block in range(a.blocks):
            rec = RankRecorder(Path(out) / str(block), 0)
            t0 = time.perf_counter_ns()
            for i in range(a.n):
                RECORD["step"] = i
                rec.write(RECORD)
            per_call_us.append((time.perf_counter_ns() - t0) / a.n / 1000)
            rec.close()
    med = statistics.median(per_call_us)
    print(
        f"RankRecorder.write: median {med:.1f} us per step record "
        f"(min {min(per_call_us):.1f}, max {max(per_call_us):.1f}; {a.blocks} blocks x {a.n})"
    )
    print(f"ratio to target ({TARGET_MS} ms): {med / 1000 / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
