"""A world-size sweep as a whole: its plan (world sizes, rounds, batches), its runs' outcomes, its
status, and its own result built around one of its runs (the scaling block comes from `scaling`).

A sweep is run live (one session, interleaved rounds) or built from finished runs of separate
jobs (`sweep --from`, `sweep_from`): on a cluster each world size is usually its own job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from minicluster.core import rundir
from minicluster.core.errors import InputError
from minicluster.core.metrics import metric, unavailable
from minicluster.result import fingerprint
from minicluster.result.model import Fingerprint, RunResult, RunStatus, Scaling, SweepResult

Mode = Literal["weak", "strong"]


MODES: tuple[Mode, ...] = ("weak", "strong")


_PLAN_KEYS = (
    "sweep_id",
    "created_at",
    "mode",
    "world_sizes",
    "repeats",
    "per_rank_batch",
    "global_batch",
    "threads_per_rank",
    "warnings",
)
FROM_KEY = "from"  # a sweep built from finished runs: their directories, in world-size order


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: world size `world_size` in round `round` (1-based)."""

    round: int
    world_size: int

    @property
    def name(self) -> str:
        """The run's sub-directory of the sweep directory."""
        return f"n{self.world_size}-r{self.round}"


@dataclass(frozen=True)
class RunOutcome:
    """A run of the sweep and its result; `result` is None when none could be built (`error`)."""

    planned: PlannedRun
    result: dict[str, Any] | None
    error: str | None = None
    source: str | None = None  # the run directory of a finished run (`sweep --from`)

    @property
    def status(self) -> str:
        return "failed" if self.result is None else str(self.result["status"])

    def value(self, name: str) -> float | None:
        """Metric `name` of an ok run; None for a run that is not ok or did not measure it."""
        if self.result is None or self.result["status"] != "ok":
            return None
        v = (self.result["metrics"].get(name) or {}).get("value")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def dir(self) -> str:
        """Where the run is: its sub-directory of a live sweep, or the directory it was read from."""
        return self.source or self.planned.name

    def why_not_ok(self) -> str:
        if self.error:
            return self.error
        errors = (self.result or {}).get("errors") or []
        return str(errors[0]) if errors else self.status


def parse_world_sizes(text: str, flag: str = "--world-sizes", at_least: int = 2) -> list[int]:
    """`--world-sizes 1,2,4` (or `flag`) as sorted distinct positive ints; InputError otherwise."""
    sizes: list[int] = []
    for part in text.split(","):
        try:
            n = int(part.strip())
        except ValueError:
            raise InputError(
                f"{flag}: {part.strip()!r} is not a whole number; give a comma list such as 1,2,4"
            ) from None
        if n < 1:
            raise InputError(f"{flag}: {n} is not a positive number of ranks")
        if n in sizes:
            raise InputError(f"{flag}: {n} is given twice")
        sizes.append(n)
    if len(sizes) < at_least:
        raise InputError(f"{flag} needs at least two sizes to compare, such as 1,2,4")
    return sorted(sizes)


def strong_global_batch(
    global_batch: int | None, per_rank_batch: int, world_sizes: Sequence[int]
) -> int:
    """The fixed global batch of a strong-scaling sweep (default: per-rank batch x largest world
    size); InputError unless every world size divides it, since each rank gets an equal share."""
    default = global_batch is None
    batch = per_rank_batch * max(world_sizes) if global_batch is None else global_batch
    if batch < 1:
        raise InputError(f"--global-batch must be >= 1, got {batch}")
    bad = [n for n in world_sizes if batch % n]
    if bad:
        what = (
            f"the default global batch {batch} (per-rank batch {per_rank_batch} x "
            f"{max(world_sizes)} ranks)"
            if default
            else f"--global-batch {batch}"
        )
        raise InputError(
            f"{what} does not split evenly over world size {', '.join(map(str, bad))}; "
            "strong scaling gives every rank the same share: pick a --global-batch every "
            "world size divides"
        )
    return batch


def plan(world_sizes: Sequence[int], repeats: int) -> list[PlannedRun]:
    """Interleaved rounds (1, 2, 4, 1, 2, 4, ...): a host that drifts over the session then
    moves every world size alike instead of biasing the ones run last."""
    return [PlannedRun(r, n) for r in range(1, repeats + 1) for n in world_sizes]


def oversubscription_warning(
    max_world_size: int, cpu_cores: int | None, on_gpu: bool
) -> str | None:
    """Why the efficiency of a CPU sweep with more ranks than cores is not only communication."""
    if on_gpu or cpu_cores is None or max_world_size <= cpu_cores:
        return None
    return (
        f"world size {max_world_size} > {cpu_cores} CPU cores: ranks share cores, so the "
        "efficiency at the larger world sizes also measures oversubscription"
    )


def pick_headline(outcomes: Sequence[RunOutcome]) -> RunOutcome | None:
    """The run whose per-rank sections and headline metrics the sweep result carries: at the
    largest world size with an ok run, the ok run with the median throughput (the lower one of an
    even count), since a failed run's figures are partial (see `left_out`). Only when no run is
    ok: the largest size's first run with a result (a failed one, whose ranks show why). None
    when no run has a result."""
    ok = [o for o in outcomes if o.value("throughput_samples_per_sec") is not None]
    if ok:
        top = max(o.planned.world_size for o in ok)
        at_top = sorted(
            (o for o in ok if o.planned.world_size == top),
            key=lambda o: o.value("throughput_samples_per_sec") or 0.0,
        )
        return at_top[(len(at_top) - 1) // 2]
    with_result = [o for o in outcomes if o.result is not None]
    if not with_result:
        return None
    top = max(o.planned.world_size for o in with_result)
    return next(o for o in with_result if o.planned.world_size == top)


def left_out(outcomes: Sequence[RunOutcome], head: RunOutcome) -> list[RunOutcome]:
    """The runs above the headline's world size: none of them finished ok, so the sweep's
    headline leaves them out (each is named in the sweep's errors)."""
    return [o for o in outcomes if o.planned.world_size > head.planned.world_size]


def sweep_status(outcomes: Sequence[RunOutcome], planned_runs: int | None = None) -> RunStatus:
    """failed when any run failed; incomplete when any fell short of its steps or a planned
    run never ran (an interrupted sweep); else ok."""
    statuses = {o.status for o in outcomes}
    if "failed" in statuses:
        return "failed"
    if planned_runs is not None and len(outcomes) < planned_runs:
        return "incomplete"
    return "incomplete" if "incomplete" in statuses else "ok"


def load_plan(sweep_dir: Path) -> dict[str, Any]:
    """The plan a sweep wrote into its directory before its first run (`sweep.json`)."""
    path = rundir.plan_path(sweep_dir)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the sweep plan {path}: {e}") from None
    missing = [k for k in _PLAN_KEYS if not isinstance(plan, dict) or k not in plan]
    if missing:
        raise InputError(f"{path}: not a sweep plan (missing {', '.join(missing)})")
    if plan["mode"] not in MODES:
        raise InputError(f"{path}: mode must be weak or strong, got {plan['mode']!r}")

    def count(v: Any, lo: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= lo

    bad = [
        key
        for key, ok in (
            ("sweep_id", isinstance(plan["sweep_id"], str)),
            ("created_at", isinstance(plan["created_at"], str)),
            (
                "world_sizes",
                isinstance(plan["world_sizes"], list)
                and len(plan["world_sizes"]) >= 1
                and all(count(n, 1) for n in plan["world_sizes"]),
            ),
            ("repeats", count(plan["repeats"], 1)),
            ("per_rank_batch", plan["per_rank_batch"] is None or count(plan["per_rank_batch"], 1)),
            ("global_batch", plan["global_batch"] is None or count(plan["global_batch"], 1)),
            (
                "threads_per_rank",
                plan["threads_per_rank"] is None or count(plan["threads_per_rank"], 1),
            ),
            (
                "warnings",
                isinstance(plan["warnings"], list)
                and all(isinstance(w, str) for w in plan["warnings"]),
            ),
            (
                FROM_KEY,
                plan.get(FROM_KEY) is None
                or (
                    isinstance(plan[FROM_KEY], list)
                    and all(isinstance(d, str) for d in plan[FROM_KEY])
                ),
            ),
        )
        if not ok
    ]
    if bad:
        raise InputError(f"{path}: not a sweep plan ({', '.join(bad)} has the wrong type)")
    return dict(plan)


def sweep_result(
    outcomes: Sequence[RunOutcome],
    scaling: dict[str, Any],
    sweep_id: str,
    created_at: str,
    aggregated_at: str,
    planned_runs: int | None = None,
) -> SweepResult | None:
    """The sweep's own `minicluster/1` result: the headline run's result (see `pick_headline`)
    with the sweep's id, status and `scaling` block, and `scaling_efficiency_pct` at the
    headline's world size. None when no run produced a result to build it on."""
    head = pick_headline(outcomes)
    if head is None or head.result is None:
        return None
    n = head.planned.world_size
    above = left_out(outcomes, head)
    if head.status == "ok":
        why = (
            "per-rank sections, metrics and plots of this result come from this run: the "
            "largest world size with an ok run, median throughput of its ok runs"
        )
    else:
        why = (
            "no run of the sweep finished ok: per-rank sections, metrics and plots of this "
            f"result come from this {head.status} run of the largest world size, and are partial"
        )
    if above:
        why += "; left out: " + "; ".join(
            f"{o.dir} (world size {o.planned.world_size}) {o.status}" for o in above
        )
    block = Scaling.from_json(
        {
            **scaling,
            "headline_run": {
                "dir": head.dir,
                "run_id": head.result["run_id"],
                "world_size": n,
                "round": head.planned.round,
                "why": why,
                **({"left_out": sorted({o.planned.world_size for o in above})} if above else {}),
            },
        }
    )
    point = block.point(n)
    assert point is not None, f"the scaling block has no point at the headline's world size {n}"
    n0 = block.baseline.world_size
    how = (
        f"{block.mode} scaling at world size {n} vs {n0}: {block.formula}; median over rounds "
        "(see scaling)"
    )
    if n == n0:  # no larger world size has an ok run (an interrupted or failing sweep)
        eff = unavailable(
            "scaling_efficiency_pct",
            f"no run above the baseline world size {n0} finished ok",
            how,
        )
    elif point.efficiency_pct is not None:
        eff = metric("scaling_efficiency_pct", point.efficiency_pct, "derived", how)
    else:
        eff = unavailable("scaling_efficiency_pct", str(point.reason), how)
    return SweepResult(
        headline=RunResult.from_json(head.result),
        scaling=block,
        sweep_id=sweep_id,
        created_at=created_at,
        aggregated_at=aggregated_at,
        status=sweep_status(outcomes, planned_runs),
        scaling_efficiency=eff,
        # what the sweep ran is what its headline ran (no field the sweep sets enters it)
        fingerprint=Fingerprint.from_json(fingerprint.of_result(head.result)),
        run_errors=[
            f"sweep run {o.dir} (world size {o.planned.world_size}, round "
            f"{o.planned.round}) {o.status}: {o.why_not_ok()}"
            for o in outcomes
            if o.status != "ok"
        ],
    )
