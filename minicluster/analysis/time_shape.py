"""The shape in time of one rank's lateness: persistent, intermittent (with its period), an
onset (a change point, `ruptures`) or a drift (Theil-Sen / Mann-Kendall, `analysis.trend`).

The series is the rank's *excess* in one component of its own work between two sync points
(compute, or host time: `analysis.accounting`): per step its value minus the median of the other
ranks'. The noise floor is 4 robust standard deviations of that series' step-to-step noise, at
least `MIN_LATE_MS`: a step is *late* when its excess is above the series' median by more.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from minicluster.analysis.accounting import Accounting
from minicluster.analysis.steps import r4

MIN_LATE_MS = 2.0
# after an onset, this share of the steps above the level before; persistent: slower than the
# others' median in this share of the steps
PERSISTENT_SHARE = 0.8
PERIOD_SHARE = 0.6  # the commonest gap between late steps covers this share of the gaps
MIN_SEGMENT = 4  # steps on each side of an onset
ONSET_ALPHA = 0.001  # a shift under load: the Mann-Whitney U test's p-value below this
# bimodal: the dip test's level (Bonferroni over the series tested), the smaller mode's least
# share of the steps and count; the lower mode is the baseline of a rank's excess when it holds
# at least BASELINE_LOW_SHARE of the steps
DIP_ALPHA = 0.01
MIN_MODE_SHARE = 0.1
MIN_MODE_STEPS = 3
BASELINE_LOW_SHARE = 0.4


COMPONENTS = ("compute", "host")


def excess(acc: Accounting, row: int, component: str = "own") -> np.ndarray:
    """Per step rank `row`'s `component` (own work: host + compute; or one of them) minus the
    median of the other ranks' (ms)."""
    values = getattr(acc, component)
    return values[row] - median_of_others(values, row)


def median_of_others(values: np.ndarray, row: int) -> np.ndarray:
    """Per column `np.median(np.delete(values, row, axis=0), axis=0)`, bit for bit, from one
    partition of `values` (np.delete copies the [rank x step] matrix and the median copies that
    again: 262 MB at 16,384 ranks, per candidate and component); rows that are all one (a zero
    row stride: a column every rank recorded alike) have that row as their median."""
    n = values.shape[0]
    if n >= 2 and values.strides[0] == 0:
        return values[0]
    if n < 3 or np.isnan(values).any():
        return np.median(np.delete(values, row, axis=0), axis=0)
    # The others' k-th smallest is the whole column's k-th when that is below the row's value,
    # else the whole column's (k+1)-th (the row's value, or a tie of it, taken out).
    m = n - 1
    lo, hi = (m - 1) // 2, m // 2
    part = np.partition(values, sorted({lo, lo + 1, hi, hi + 1}), axis=0)
    mine = values[row]

    def others(k: int) -> np.ndarray:
        return np.where(part[k] < mine, part[k], part[k + 1])

    return (others(lo) + others(hi)) / 2 if lo != hi else others(lo)


def noise_floor_ms(d: np.ndarray) -> float:
    """4 robust standard deviations of the noise of `d`, at least MIN_LATE_MS: the smallest of
    three robust estimates, 1.4826 x MAD of the values (which a level shift or a drift widens),
    of the first differences / sqrt 2 (which spikes in a quarter of the steps widen) and of the
    differences two steps apart / sqrt 2 (a pause every other step makes half the values late
    and every first difference a jump: two steps apart, only the noise is left)."""
    if d.size < 3:
        return MIN_LATE_MS
    scales = [float(np.median(np.abs(d - np.median(d))))]
    for lag in (1, 2):
        diffs = d[lag:] - d[:-lag]
        scales.append(float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2))
    return max(MIN_LATE_MS, 4 * 1.4826 * min(scales))


def two_modes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`x` split in two at the cut that leaves the least squared deviation from each side's mean
    (1-D two-means, exact over every cut of the sorted values): (lower side, upper side)."""
    v = np.sort(x)
    n = v.size
    k = np.arange(1, n)  # values below the cut
    s1, s2 = np.cumsum(v)[:-1], np.cumsum(v**2)[:-1]
    t1, t2 = float(v.sum()), float((v**2).sum())
    within = (s2 - s1**2 / k) + ((t2 - s2) - (t1 - s1) ** 2 / (n - k))
    cut = int(k[np.argmin(within)])
    return v[:cut], v[cut:]


def dip_test(x: np.ndarray) -> tuple[float, float] | None:
    """Hartigan's dip statistic of `x` and its p-value (3 significant digits, as reported);
    None when there are too few values to test."""
    if x.size < 2 * MIN_SEGMENT:
        return None
    import diptest  # lazily: only the time structure needs it

    dip, p_value = diptest.diptest(np.asarray(x, dtype=np.float64))
    return float(dip), float(f"{float(p_value):.3g}")


def bimodal(x: np.ndarray) -> dict[str, Any] | None:
    """Hartigan's dip test of unimodality of `x` (`diptest`: the dip statistic and its p-value
    from the tabulated null) and its two modes (`two_modes`: median and count of each side);
    None when there are too few values to test."""
    test = dip_test(x)
    if test is None:
        return None
    dip, p_value = test
    low, high = two_modes(x)
    return {
        "dip": r4(dip),
        "p_value": p_value,
        "modes_ms": [r4(float(np.median(low))), r4(float(np.median(high)))],
        "mode_steps": [int(low.size), int(high.size)],
    }


def describe(acc: Accounting, row: int) -> dict[str, Any]:
    """The kind (persistent, intermittent, onset, drift), the component that carries it (compute
    or host time), the late steps, the typical excess of a late step, the period or the step the
    slowness starts from, and a one-line `text`."""
    # The component whose excess adds up to most: a pause between steps sits in host time alone,
    # where the noise of compute on a busy host does not hide it.
    component = max(COMPONENTS, key=lambda c: float(np.clip(excess(acc, row, c), 0, None).sum()))
    d = excess(acc, row, component)
    floor = noise_floor_ms(d)
    base = _baseline(d, floor)
    steps = acc.steps
    where = "in compute" if component == "compute" else "in host time outside forward/backward"
    out: dict[str, Any] = {
        "kind": "intermittent",
        "component": component,
        "late_steps": [],
        "late_ms_median": None,
        "noise_floor_ms": r4(floor),
        "period_steps": None,
        "from_step": None,
        "slope_ms_per_step": None,
    }
    above = d - base > floor
    # the late steps are the mode of the big ones: at least half their median size (a
    # busy host's blips just above the floor are not the pause of one size this names)
    cut = max(floor, 0.5 * float(np.median(d[above] - base))) if above.any() else floor
    late = d - base > cut
    late_steps = [int(s) for s in steps[late]]
    period = _period(late_steps, steps)
    # a period held over the whole window is no onset or drift: a change point found in a
    # series late in every other step is the noise moving the median between its two modes
    onset = None if period is not None else find_onset(d, floor, tested=True)
    drift = None if period is not None else _drift(d, steps, onset, floor)
    if onset is not None and not _kept_pace(d, onset):
        # late throughout, and later still from the change point (the load on its host grew):
        # persistent, not an onset (a drift is judged from the change point, as after an onset)
        onset = None
    if drift is not None:
        first = int(drift["from_step"])
        out.update(
            kind="drift",
            late_steps=[int(s) for s in steps[steps >= first]],
            slope_ms_per_step=r4(drift["slope"]),
            from_step=first,
            text=f"drift, +{drift['slope']:.2g} ms per step from step {first} {where}",
        )
    elif onset is not None:
        size = float(np.median(d[onset:]) - np.median(d[:onset]))
        out.update(
            kind="onset",
            late_steps=[int(s) for s in steps[onset:]],
            late_ms_median=r4(size),
            from_step=int(steps[onset]),
            text=f"onset at step {int(steps[onset])}, +{size:.0f} ms since {where}",
        )
    else:
        size = float(np.median(d[late])) if late.any() else 0.0
        persistent = base > floor or (
            base > MIN_LATE_MS and float(np.mean(d > 0)) >= PERSISTENT_SHARE
        )
        if persistent and (period is None or size < 2 * base):
            # slower by more than the noise, or (noisy) slower in nearly every step; periodic
            # spikes on top of it lead when they are the bigger part
            out.update(
                kind="persistent",
                late_steps=[int(s) for s in steps[d > 0]],  # the steps its text counts
                late_ms_median=r4(base),
                text=f"persistent, {_slower_in(d)}, +{base:.0f} ms {where}",
            )
        else:
            every = f"every {_ordinal(period)} step" if period else f"{len(late_steps)} late steps"
            out.update(
                late_steps=late_steps,
                late_sizes_ms=[r4(x) for x in d[late]],
                late_ms_median=r4(size),
                period_steps=period,
                text=f"intermittent, {every}, +{size:.0f} ms {where}",
            )
    return out


def _slower_in(d: np.ndarray) -> str:
    """In how many steps the rank's own work exceeded the others' median, as the evidence says
    it: "every step" only when it did in all of them ("slower in 26 of 30 steps" otherwise)."""
    slower = int(np.count_nonzero(d > 0))
    return "every step" if slower == d.size else f"slower in {slower} of {d.size} steps"


def _baseline(d: np.ndarray, floor: float) -> float:
    """The excess of a step that is not late: the median, unless the steps fall in two modes
    apart by more than the noise floor with the lower one holding at least BASELINE_LOW_SHARE of
    them and at the others' pace (within the floor of 0: late in about every other step, the
    median then sits between the modes, or on the late one); then the lower mode's median."""
    split = bimodal(d)
    if (
        split is not None
        and split["p_value"] < DIP_ALPHA
        and split["modes_ms"][1] - split["modes_ms"][0] > floor
        and split["mode_steps"][0] >= BASELINE_LOW_SHARE * d.size
        and abs(split["modes_ms"][0]) <= floor
    ):
        return float(split["modes_ms"][0])
    return float(np.median(d))


ONE_SIZE_SPREAD = 0.25  # (p75 - p25) / median of the late steps' excess: a pause of one size


def has_shape(shape: dict[str, Any]) -> bool:
    """Whether `describe` found a shape in time: persistent, an onset, a drift or a period (the
    late steps of a busy host's noise have none)."""
    return shape["kind"] != "intermittent" or shape["period_steps"] is not None


def one_size(shape: dict[str, Any]) -> bool:
    """Whether the late steps of an intermittent shape without a period stand apart as one mode:
    at least 3 of them, their excess within ONE_SIZE_SPREAD of each other (a GC or a checkpoint
    write of one size at irregular times; a busy host's preemptions come in every size)."""
    sizes = shape.get("late_sizes_ms") or []
    if len(sizes) < 3:
        return False
    p25, p50, p75 = np.percentile(sizes, [25, 50, 75])
    return bool(p50 > 0 and (p75 - p25) / p50 <= ONE_SIZE_SPREAD)


def find_onset(d: np.ndarray, floor: float, tested: bool = False) -> int | None:
    """The index from which the excess is higher by more than the noise floor, as a level (one
    change point, `ruptures` binary segmentation, both medians apart); None when there is none.
    `tested`: failing that, a shift that the two segments show beyond chance (a rank's excess,
    under load)."""
    if d.size < 2 * MIN_SEGMENT:
        return None
    if not tested and not some_split_persistent(d, floor):
        return None  # whichever split the search found would fail the test below
    import ruptures  # lazily: a change-point search is only needed here

    try:
        search = ruptures.Binseg(model="l2", min_size=MIN_SEGMENT, jump=1).fit(d.reshape(-1, 1))
        k = search.predict(n_bkps=1)[0]
    except ruptures.exceptions.BadSegmentationParameters:  # too few steps to split
        return None
    if k >= d.size:
        return None
    before, after = d[:k], d[k:]
    # most steps after it above everything typical before it: a level shift, not a few spikes
    typical = float(np.median(before)) + floor
    if float(np.mean(after > typical)) >= PERSISTENT_SHARE:
        return k
    if not tested:
        return None
    return k if _shifted(d, k, splits=1) else _rank_onset(d)


def some_split_persistent(d: np.ndarray, floor: float) -> bool:
    """Whether some split the change-point search of `find_onset` can return (MIN_SEGMENT steps or
    more on each side) passes its test: PERSISTENT_SHARE of the steps after it above the median
    before it plus `floor` (the same expressions, at every such split). When none does, no
    onset is found whichever split the search picks, and it is not run: ruptures imports
    scipy.stats and scipy.signal (0.7 s), which a run without an onset needs nowhere else.
    True for a series holding NaN (the search then decides, as before)."""
    if np.isnan(d).any():
        return True
    for k in range(MIN_SEGMENT, d.size - MIN_SEGMENT + 1):
        typical = float(np.median(d[:k])) + floor
        if float(np.mean(d[k:] > typical)) >= PERSISTENT_SHARE:
            return True
    return False


def _shifted(d: np.ndarray, k: int, splits: int) -> bool:
    """Whether the steps from index `k` are higher than those before beyond chance (one-sided
    Mann-Whitney U p-value, times the `splits` tried, below ONSET_ALPHA), by more than
    MIN_LATE_MS in median, while the rank kept the others' pace before (its median excess there
    below half the shift: a rank late throughout is persistent, not an onset)."""
    from scipy.stats import mannwhitneyu  # lazily: scipy.stats takes a while to import

    shift = float(np.median(d[k:]) - np.median(d[:k]))
    if shift <= MIN_LATE_MS or not _kept_pace(d, k):
        return False
    p_value = float(mannwhitneyu(d[k:], d[:k], alternative="greater").pvalue)
    return p_value * splits < ONSET_ALPHA


def _kept_pace(d: np.ndarray, k: int) -> bool:
    """Whether the rank kept the others' pace before index `k`: its median excess there below
    half the shift in median at `k`."""
    level = float(np.median(d[:k]))
    return level < (float(np.median(d[k:])) - level) / 2


def _rank_onset(d: np.ndarray) -> int | None:
    """Under CPU load a step's noise can be as large as the shift (tens of ms on a busy 2-core
    host), which neither the l2 split nor the floor sees through; the ranks of the steps still
    show it. The split where the steps after are highest in rank over those before (the
    Mann-Whitney U statistic, standardised, at every split leaving MIN_SEGMENT steps a side),
    when that is beyond chance (its one-sided p-value times the splits tried below
    ONSET_ALPHA), the shift in median is more than MIN_LATE_MS, and the rank kept the others'
    pace before (its median excess there below half the shift: a rank late throughout is
    persistent, not an onset)."""
    from scipy.stats import rankdata  # lazily: scipy.stats takes a while to import

    n = d.size
    ks = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    ranks = rankdata(d)
    after_sum = np.cumsum(ranks[::-1])[::-1]  # sum of the ranks from index i on
    m = n - ks  # steps after each split
    u = after_sum[ks] - m * (m + 1) / 2.0
    z = (u - m * ks / 2.0) / np.sqrt(m * ks * (n + 1) / 12.0)
    best = int(np.argmax(z))
    k = int(ks[best])
    return k if _shifted(d, k, splits=int(ks.size)) else None


def _drift(
    d: np.ndarray, steps: np.ndarray, onset: int | None, floor: float
) -> dict[str, float] | None:
    """A significant growing trend of the excess (from the onset, when there is one: a ramp
    has a change point too) whose fitted growth over that window is more than twice the noise
    floor; with the step where the fitted line leaves the level before (`from_step`). None when
    there is none (a level shift is flat after its onset)."""
    from minicluster.analysis.trend import MIN_POINTS, trend

    start = onset or 0
    ys, xs = d[start:], steps[start:]
    if ys.size < max(MIN_POINTS, 2 * MIN_SEGMENT):
        return None
    t = trend(ys.tolist(), xs.tolist())
    if not (t.p_value < 0.05 and t.slope_low > 0 and t.end - t.start > 2 * floor):
        return None
    level = float(np.median(d[:start])) if start else float(t.start)
    # where the fitted line crosses the level before: the ramp's first step
    crossing = float(xs[0]) + (level - t.start) / t.slope
    first = int(np.clip(round(crossing), steps[0], xs[0]))
    return {"slope": t.slope, "from_step": first}


def _period(late_steps: list[int], steps: np.ndarray) -> int | None:
    """The commonest gap between consecutive late steps when it covers most gaps and the run
    keeps it: late in most of the steps that period puts over the whole window (a streak of
    late steps at one end is not periodic)."""
    gaps = np.diff(late_steps).tolist()
    if len(gaps) < 3:  # four late steps at least: two equal gaps happen by chance
        return None
    gap, count = Counter(gaps).most_common(1)[0]
    if gap <= 1 or count < PERIOD_SHARE * len(gaps):
        return None
    phase = late_steps[0] % gap
    on_beat = [int(s) for s in steps if s % gap == phase]
    hit = len(set(on_beat) & set(late_steps))
    return int(gap) if hit >= PERIOD_SHARE * len(on_beat) else None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def culprit_structure(culprits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The time-structure findings of scope `rank` (the result's `time_structure` holds these,
    then `run_findings`): each culprit's shape, with its evidence."""
    return [
        {
            "scope": "rank",
            "rank": c["rank"],
            "kind": c["kind"],
            "evidence": c["shape"]["text"],
            **{
                k: c["shape"][k]
                for k in ("period_steps", "from_step", "slope_ms_per_step")
                if c["shape"].get(k) is not None
            },
        }
        for c in culprits
    ]


def run_findings(acc: Accounting) -> list[dict[str, Any]]:
    """The time-structure findings made from the accounting alone: bimodal step times
    (`bimodal_findings`), and a drift or an onset of the step time itself (scope `run`: every
    rank slowing together, e.g. thermal throttling of the whole host, which names no culprit),
    each with its evidence."""
    if acc.n < 2 * MIN_SEGMENT:
        return []
    out = bimodal_findings(acc)
    from minicluster.analysis.trend import could_drift, drift

    step_ms = acc.accounted
    found = (
        drift(step_ms.tolist(), acc.steps.tolist(), direction="lower")
        if could_drift(step_ms, acc.steps, direction="lower")
        else None  # its fitted change is short of a drift's: not one (no scipy needed)
    )
    if found is not None and found["drifting"]:
        t = found["trend"]
        out.append(
            {
                "scope": "run",
                "rank": None,
                "kind": "drift",
                "slope_ms_per_step": r4(t["slope"]),
                "evidence": f"step time {found['reason']}; Theil-Sen slope "
                f"{t['slope']:+.3g} ms per step ({100 * t['confidence']:g}% interval "
                f"{t['slope_low']:+.3g} to {t['slope_high']:+.3g})",
            }
        )
        return out
    floor = noise_floor_ms(step_ms)
    k = find_onset(step_ms, floor)
    if k is not None:
        before, after = float(np.median(step_ms[:k])), float(np.median(step_ms[k:]))
        if after - before >= 0.05 * before:
            out.append(
                {
                    "scope": "run",
                    "rank": None,
                    "kind": "onset",
                    "from_step": int(acc.steps[k]),
                    "evidence": f"step time {before:.1f} -> {after:.1f} ms (median) from step "
                    f"{int(acc.steps[k])} (change point, ruptures)",
                }
            )
    return out


def _dip_candidates(own: np.ndarray, alpha: float) -> set[int] | None:
    """The rows of `own` whose dip test could come out below `alpha`; None: every row (too few
    steps, or a value not finite). Every row has the same length, so each one's p-value (`diptest`'s
    interpolation in the tabulated null at that length) falls as its dip statistic grows: rows
    are tested from the largest dip down until one's p-value is at least twice `alpha` (a
    margin for the rounding of the interpolation and of the reported p-value); the rows with
    smaller dips are not. Each dip made from the matrix sorted once (`diptest.dipstat`, the
    statistic `diptest.diptest` makes): 4,096 ranks' p-values were a third of the time
    structure's CPU."""
    rows, n = own.shape
    if rows < 2 or n < 2 * MIN_SEGMENT or not np.isfinite(own).all():
        return None
    import diptest  # lazily: only the time structure needs it

    ordered = np.sort(np.asarray(own, dtype=np.float64), axis=1)
    dips = np.array([diptest.dipstat(row, sort_x=False) for row in ordered])
    kept: set[int] = set()
    for i in np.argsort(-dips, kind="stable").tolist():
        test = dip_test(own[i])
        kept.add(i)
        if test is None or test[1] >= 2 * alpha:
            break
    return kept


def bimodal_findings(acc: Accounting) -> list[dict[str, Any]]:
    """`bimodal` findings: the step time (scope `run`) or a rank's own work per step, host +
    compute (scope `rank`: its step time without the waits), whose values fall in two modes
    (Hartigan's dip test, p below DIP_ALPHA Bonferroni over the series tested), the smaller one
    at least MIN_MODE_STEPS steps and MIN_MODE_SHARE of them, the modes further apart than the
    series' noise floor. Two levels one after the other are an onset, not two modes: a series
    with a change point (`find_onset`) is left out."""
    series: list[tuple[int | None, str, np.ndarray]] = [(None, "step time", acc.accounted)]
    series += [
        (rank, f"rank {rank}'s own work per step (host + compute)", acc.own[i])
        for i, rank in enumerate(acc.ranks)
    ]
    alpha = DIP_ALPHA / len(series)
    out = []
    tested = _dip_candidates(acc.own, alpha)
    for i, (rank, what, x) in enumerate(series):
        if i and tested is not None and i - 1 not in tested:
            continue  # its dip is below one whose p-value is twice the level (below)
        test = dip_test(x)  # first: the modes of the thousands of unimodal ranks are not needed
        if test is None or test[1] >= alpha:
            continue
        split = bimodal(x)
        assert split is not None
        floor = noise_floor_ms(x)
        (low, high), (n_low, n_high) = split["modes_ms"], split["mode_steps"]
        if min(n_low, n_high) < max(MIN_MODE_STEPS, MIN_MODE_SHARE * x.size):
            continue
        if high - low <= floor or find_onset(x, floor) is not None:
            continue
        p = "p < 0.001" if split["p_value"] < 0.001 else f"p = {split['p_value']:.2g}"
        out.append(
            {
                "scope": "run" if rank is None else "rank",
                "rank": rank,
                "kind": "bimodal",
                **split,
                "evidence": f"{what} is bimodal: Hartigan's dip {split['dip']:.3f}, {p} "
                f"(level {alpha:.2g}); modes {low:.1f} ms ({n_low} steps) and {high:.1f} ms "
                f"({n_high} steps)",
            }
        )
    return out
