"""The `pipeline` section of a pipeline-parallel run: the measured bubble per stage and for the
job beside the schedule's theoretical `(p-1)/(m+p-1)`.

A stage's bubble in a step is the share of its schedule (forward and backward of every
microbatch, with the sends and receives between stages) in which none of its forward or backward
chunks ran: `100 x (1 - busy_ms / schedule_ms)`, busy the union of its chunks' host-clock spans.
Per stage the median over measured steps; the job's is per step the mean over stages, then the
median over steps. It includes the time a stage waits for its neighbours' data, which the
theoretical figure (equal stages, free communication) leaves out.
"""

from __future__ import annotations

import statistics
from typing import Any

from minicluster.analysis.records import RankRecords


def theory_pct(stages: int, microbatches: int) -> float:
    """The 1F1B / GPipe bubble fraction (p-1)/(m+p-1) in percent (Narayanan et al. 2021)."""
    return 100.0 * (stages - 1) / (microbatches + stages - 1)


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    return float(value) if ok else None


def pipeline_section(
    records: list[RankRecords], schedule: str | None, microbatches: int | None, stages: int
) -> dict[str, Any] | None:
    """The section, or None for a run that is not pipelined (no step says its stage)."""
    per_stage: list[dict[str, Any]] = []
    by_step: dict[int, list[float]] = {}
    for rec in records:
        fractions, busy, sched = [], [], []
        stage = None
        for s in rec.steps:
            b, t = _num(s.get("pp_busy_ms")), _num(s.get("pp_schedule_ms"))
            if s.get("warmup") or b is None or t is None or t <= 0:
                continue
            stage = _num(s.get("pp_stage"))
            idle = 100.0 * max(0.0, 1.0 - b / t)
            fractions.append(idle)
            busy.append(b)
            sched.append(t)
            by_step.setdefault(int(s["step"]), []).append(idle)
        if stage is None:
            continue
        per_stage.append(
            {
                "stage": int(stage),
                "rank": rec.rank,
                "busy_ms": round(statistics.median(busy), 4),
                "schedule_ms": round(statistics.median(sched), 4),
                "bubble_pct": round(statistics.median(fractions), 2),
            }
        )
    if not per_stage:
        return None
    job = [statistics.mean(v) for v in by_step.values()]
    return {
        "schedule": schedule,
        "stages": stages,
        "microbatches": microbatches,
        "bubble_pct": round(statistics.median(job), 2),
        "bubble_pct_theory": round(theory_pct(stages, microbatches), 2) if microbatches else None,
        "method": "per stage 100 x (1 - busy / schedule time), busy = union of its forward and "
        "backward chunks (host clock); job = median over steps of the mean over stages",
        "per_stage": sorted(per_stage, key=lambda e: e["stage"]),
    }
