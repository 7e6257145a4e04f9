"""A slower run or a busier host: the two runs' run-queue delay against their step-time change.

A minicluster result records its ranks' CPU time and run-queue delay per step (`host_cpu`: the
time their threads were runnable but waited for a CPU the host's other processes held). Two
identical default jobs on this project's 2-vCPU VM, the second started while other jobs began,
differed by +94% in step time (18.1 -> 35.2 ms) with the same CPU time (14.5 -> 16.0 ms) and
the run-queue delay up 4.96 -> 18.9 ms a step: `compare` called ten timing rows regressed. The
step time did grow; the job did not.

The rule (the host-contention rule of `analysis.contention`, between runs instead of ranks):
where the step time changed by at least the comparison's threshold, the run-queue delay changed
the same way by at least `share_pct` (50%) of that change, and the CPU time by less than that
share, the change is the hosts' load, not the job's: the timing rows are not judged (NOT JUDGED,
exit 2: rerun both on hosts of the same load). Memory and temperature rows are judged as before.
A job that got slower by its own doing (more CPU time a step, or a sleep: neither raises the
run-queue delay) is judged as before; so is a pair without the figures on both sides (results
before rank format 1.7, other tools' formats).
"""

from __future__ import annotations

from typing import Any

from minicluster.interop.record import BenchmarkRecord

DEFAULT_SHARE_PCT = 50.0
# families whose rows are times or rates of time: a busier host moves them all
UNTIMED_FAMILIES = frozenset({"memory", "thermal"})
_STEP = "step_time_mean_ms"


def load_of(details: dict[str, Any]) -> dict[str, Any] | None:
    """A record's `host_cpu` (from its result), or None when it has none."""
    load = details.get("host_cpu")
    if not isinstance(load, dict):
        return None
    if not all(isinstance(load.get(k), (int, float)) for k in ("cpu_ms", "cpu_wait_ms")):
        return None
    return load


def _step(rec: BenchmarkRecord) -> float | None:
    mv = rec.metrics.get(_STEP)
    value = getattr(mv, "value", None) if mv is not None else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def explained(
    step_a: float,
    step_b: float,
    load_a: dict[str, Any],
    load_b: dict[str, Any],
    threshold_pct: float,
    share_pct: float = DEFAULT_SHARE_PCT,
) -> bool:
    """Whether the step-time change a -> b is the hosts' load, as the module says."""
    if load_a.get("threads") != load_b.get("threads"):  # all threads' delay vs the main thread's
        return False
    d_step = step_b - step_a
    if abs(d_step) * 100.0 < threshold_pct * step_a:  # no timing verdict to take back
        return False
    sign = 1.0 if d_step > 0 else -1.0
    d_wait = (load_b["cpu_wait_ms"] - load_a["cpu_wait_ms"]) * sign
    d_cpu = (load_b["cpu_ms"] - load_a["cpu_ms"]) * sign
    share = share_pct / 100.0
    return d_wait >= share * abs(d_step) and d_cpu < share * abs(d_step)


def line(
    label_a: str,
    label_b: str,
    step_a: float,
    step_b: float,
    load_a: dict[str, Any],
    load_b: dict[str, Any],
) -> str:
    """`B ran on a busier host: the ranks' threads waited ... ms a step for a CPU ...`."""
    d_step = step_b - step_a
    busy, quiet = (label_b, label_a) if d_step > 0 else (label_a, label_b)
    lbusy, lquiet = (load_b, load_a) if d_step > 0 else (load_a, load_b)
    d_wait = abs(load_b["cpu_wait_ms"] - load_a["cpu_wait_ms"])
    share = (
        f"{100.0 * d_wait / abs(d_step):.0f}% of the {abs(d_step):.1f} ms step-time difference"
        if d_wait < abs(d_step)
        else f"{d_wait:.1f} ms more, beyond the {abs(d_step):.1f} ms step-time difference"
    )
    return (
        f"{busy} ran on a busier host: the ranks' threads waited {lbusy['cpu_wait_ms']:.1f} ms "
        f"a step for a CPU other processes held ({quiet}: {lquiet['cpu_wait_ms']:.1f} ms), "
        f"{share} ({step_a:.1f} -> {step_b:.1f} ms), while their CPU time a step differed "
        f"{load_b['cpu_ms'] - load_a['cpu_ms']:+.1f} ms: the timing rows are not judged; rerun "
        "both on hosts of the same load"
    )


def differs(
    a: BenchmarkRecord,
    b: BenchmarkRecord,
    threshold_pct: float,
    share_pct: float = DEFAULT_SHARE_PCT,
) -> str | None:
    """The line saying that `a` and `b` ran on hosts of different CPU load, as above; None when
    they did not, or it cannot be told."""
    la, lb = load_of(a.details), load_of(b.details)
    sa, sb = _step(a), _step(b)
    if la is None or lb is None or sa is None or sb is None:
        return None
    if not explained(sa, sb, la, lb, threshold_pct, share_pct):
        return None
    return line(a.label, b.label, sa, sb, la, lb)


def unchecked(a: BenchmarkRecord, b: BenchmarkRecord) -> str | None:
    """A warning when one side records the hosts' CPU load and the other does not: the rule
    above cannot be applied, and a step-time change may be the host's (None otherwise, and
    when neither side records it: other tools' formats never do)."""
    has = {rec.label: load_of(rec.details) is not None for rec in (a, b)}
    if all(has.values()) or not any(has.values()):
        return None
    missing = next(label for label, ok in has.items() if not ok)
    return (
        f"the hosts' CPU load is not compared: {missing} records none (host_cpu: a result of "
        "rank format < 1.7, or without schedstat); a step-time change may be the host's load"
    )
