"""The verdict thresholds (the `checks:` section of a config): what a finished run is judged by.

Stdlib only and separate from `config`, so the command line can offer each threshold as a flag
(`minicluster aggregate DIR --straggler-threshold 30`) without loading the YAML machinery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _check(
    lo: float | None, hi: float | None, flag: str, metavar: str, text: str
) -> dict[str, Any]:
    """Metadata of a verdict threshold: its range, and the `aggregate` flag that overrides it."""
    return {"min": lo, "max": hi, "flag": flag, "metavar": metavar, "help": text}


@dataclass(frozen=True)
class ChecksSection:
    """The verdict thresholds: what a finished run is judged by. Aggregation takes them as an
    argument, so `minicluster aggregate DIR --straggler-threshold 30` re-judges a run without
    running it again. (Before the rank format 1.4 they sat in `run`; they are still read there.)"""

    # A rank whose median compute time exceeds the other ranks' median by this much is named.
    straggler_threshold_pct: float = field(
        default=20.0,
        metadata=_check(
            0,
            None,
            "--straggler-threshold",
            "PCT",
            "a straggler's median compute time exceeds "
            "the other ranks' median by more than PCT percent",
        ),
    )
    # ... and by at least this many ms: sub-ms compute differs by 2x from scheduling noise alone
    # on a shared host (measured: 0.75 vs 1.5 ms medians in a clean 2-rank CPU run).
    straggler_min_excess_ms: float = field(
        default=2.0,
        metadata=_check(
            0, None, "--straggler-min-excess", "MS", "... and by at least MS milliseconds"
        ),
    )
    # ... and it is the slowest rank in at least this share of the steps (the effect size: a
    # straggler is slow step after step; a rank sharing a core with other work on a loaded host
    # is slow in streaks). Measured on a 2-core host at load 4-7: healthy runs 46-70% of the
    # steps (max over 25 runs), a 20 ms straggler 92-100% in 7 of 8 runs, 74% in the 8th.
    straggler_min_steps_pct: float = field(
        default=80.0,
        metadata=_check(
            50,
            100,
            "--straggler-min-steps",
            "PCT",
            "... and is the slowest rank in at least PCT percent of the steps",
        ),
    )
    # ... and the other ranks waited for it in the collectives (`analysis.waited`): the lower
    # bound of the 95% interval of their wait for it, ms per step, above this share of the
    # run's median step time. The same evidence is required of a culprit. Under CPU load a
    # rank's own compute inflates with nobody waiting for it (issue 25).
    min_waited_for_pct: float = field(
        default=5.0,
        metadata=_check(
            0,
            100,
            "--min-waited-for",
            "PCT",
            "a straggler or culprit is named only when the others waited for it in the "
            "collectives (the lower bound of a 95 percent interval) more than PCT percent of the median step "
            "time per step",
        ),
    )
    # The gradient all-reduce's expected bus bandwidth (GB/s, nccl-tests busbw: the fabric's
    # spec or a known-good measurement); a run below slow_link_below_pct of it has a slow link.
    # None: the link is not judged (a probe over the same links could not see a slow one).
    expect_busbw_gbps: float | None = field(
        default=None,
        metadata=_check(
            1e-9,
            None,
            "--expect-busbw",
            "GBPS",
            "the gradient all-reduce's expected bus bandwidth in GB/s (the fabric's spec or "
            "a known-good measurement, e.g. `minicluster collectives` busbw at the bucket size): "
            "a run below checks.slow_link_below_pct of it has a slow link, exit 1; none: the link "
            "is not judged",
        ),
    )
    slow_link_below_pct: float = field(
        default=50.0,
        metadata=_check(
            1,
            100,
            "--slow-link-below",
            "PCT",
            "a measured busbw below PCT percent of the expected one is a slow link",
        ),
    )
    # A run judged against a reference (`aggregate --reference FILE`) below this % of the
    # reference's figure (step time, TFLOP/s, busbw) is below the floor.
    reference_floor_pct: float = field(
        default=90.0,
        metadata=_check(
            1,
            100,
            "--floor-pct",
            "PCT",
            "with --reference: a figure below PCT percent of the reference's is below the floor "
            "(exit 1)",
        ),
    )
    # A rank whose cost (the wall time the run would save had it run at the others' pace) is at
    # least this share of the run, and significantly above the other ranks', is a culprit.
    culprit_cost_pct: float = field(
        default=5.0,
        metadata=_check(
            0,
            100,
            "--culprit-cost-pct",
            "PCT",
            "a rank that cost the run at least PCT percent of its wall time (significantly more "
            "than any other rank) is a culprit",
        ),
    )
    # ... and at least this many ms per measured step on average: on a shared host a rank
    # descheduled a few ms per step costs a run of 4 ms steps half its time (seen: 3.0 vs 0.5 ms
    # median compute, 58%), the neighbours' doing, as the straggler rule's floor says.
    culprit_min_ms_per_step: float = field(
        default=2.0,
        metadata=_check(
            0,
            None,
            "--culprit-min-ms",
            "MS",
            "... and at least MS milliseconds per measured step on average",
        ),
    )
    # A culprit or straggler whose lateness is mostly its threads waiting on a run queue for a
    # CPU other processes held (Linux schedstat run_delay, step `cpu_wait_ms`) is not named: host
    # CPU contention, NOT JUDGED (exit 2; analysis.contention). Issue 25: on a 2-core host 2 of
    # 30 clean runs beside the test suite got a culprit this way.
    contention_share_pct: float = field(
        default=50.0,
        metadata=_check(
            1,
            100,
            "--contention-share",
            "PCT",
            "a late rank whose CPU run-queue delay above the other ranks' covers at least PCT "
            "percent of its lateness (its own CPU time above theirs less than that, the rest too "
            "small to name it) is host CPU contention: not judged (exit 2), not a culprit or "
            "straggler",
        ),
    )
    # A slow link on a CPU (gloo) run whose ranks' threads waited for a CPU this share of the
    # step or more (a rank's median cpu_wait_ms over its median step time) is not judged: the
    # transfer runs on those threads (issue 25: 1 of 30 clean runs a false slow link, busbw 42%).
    contention_slow_link_pct: float = field(
        default=20.0,
        metadata=_check(
            1,
            100,
            "--contention-slow-link",
            "PCT",
            "a slow link on a CPU (gloo) run where a rank's threads waited for a CPU at least "
            "PCT percent of its median step time (and at least the transfer's shortfall against "
            "the expected busbw) is host CPU contention: not judged (exit 2)",
        ),
    )


CHECK_KEYS = tuple(f.name for f in dataclasses.fields(ChecksSection))
