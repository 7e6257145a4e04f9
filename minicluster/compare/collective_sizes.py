"""busbw per message size of two collective benchmarks (minicluster `collectives`, nccl-tests logs),
size by size for the op and sizes both measured.

One number per size (a mean over iterations) and no samples: each row shows both values, the
delta and a verdict by the threshold, and is not gated (small sizes are latency-bound and move
by more than any threshold from run to run); the gated figure is the peak busbw row of the main
table. Sizes measured on one side only are listed as such.
"""

from __future__ import annotations

from typing import Any

from minicluster.core.units import format_size
from minicluster.interop.record import BenchmarkRecord

# nccl-tests prints busbw with 2 decimals: a difference below one print step is no change
PRINT_STEP_GBPS = 0.01


def _table(rec: BenchmarkRecord) -> dict[tuple[str, int], float | None]:
    rows = rec.details.get("collective_sizes") or []
    return {
        (str(r["op"]), int(r.get("nominal_bytes") or r["size_bytes"])): r.get("busbw_gbps")
        for r in rows
        if isinstance(r, dict) and r.get("op") and r.get("size_bytes") is not None
    }


def sizes_rows(
    a: BenchmarkRecord, b: BenchmarkRecord, threshold_pct: float, not_comparable: str | None
) -> list[dict[str, Any]]:
    """Per (op, size) both busbw values, delta and verdict; [] unless both sides hold a table."""
    ta, tb = _table(a), _table(b)
    if not ta or not tb:
        return []
    out = []
    for op, size in sorted(set(ta) | set(tb), key=lambda k: (k[0], k[1])):
        va, vb = ta.get((op, size)), tb.get((op, size))
        row: dict[str, Any] = {
            "op": op,
            "size_bytes": size,
            "size": format_size(size),
            "a": va,
            "b": vb,
            "delta_pct": None,
            "verdict": "missing",
            "reason": "",
        }
        if va is None or vb is None:
            side = a.label if (op, size) not in ta or va is None else b.label
            row["reason"] = f"not measured by {side}"
        elif not_comparable:
            row["verdict"], row["reason"] = "not_comparable", not_comparable
        elif abs(vb - va) < PRINT_STEP_GBPS:
            row["verdict"], row["reason"] = "no_change", "below the 0.01 GB/s print resolution"
        elif va == 0:
            row["verdict"] = "better" if vb > va else "worse"
            row["reason"] = "baseline 0: percent undefined; not gated"
        else:
            pct = 100.0 * (vb - va) / va
            row["delta_pct"] = pct
            if abs(pct) < threshold_pct:
                row["verdict"], row["reason"] = (
                    "no_change",
                    f"within the {threshold_pct:g}% threshold",
                )
            else:
                row["verdict"] = "better" if pct > 0 else "worse"
                row["reason"] = (
                    f"beyond {threshold_pct:g}%; one number per size, no test: not gated"
                )
        out.append(row)
    return out
