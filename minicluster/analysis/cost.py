"""What each rank and node cost the run: the wall time saved had it run at the others' pace.

The what-if (after ByteDance's OSDI'25 analysis) runs on the accounting (`analysis.accounting`):
replace rank r's own work between two sync points (host + compute) by the median of the other
ranks' in that step and recompute the step's critical path (the last arrival's own work plus
the transfer). The other ranks' own work is at most their maximum, so the step saves exactly the
lateness of r when r arrived last, and nothing otherwise: `cost_ms` is the sum of r's lateness
over the steps it arrived last, `cost_pct` that share of the accounted wall time. A node's cost
replaces all its ranks at once (the step saves what its latest rank was ahead of the other
nodes' latest).

The interval is a bootstrap over steps (scipy's percentile bootstrap, paired: a step's cost and
its time resampled together; one set of resampled steps, seeded by the step count, for every
rank). It is reported, never judged on. On a busy host every rank arrives last now and then: a rank is a *culprit* only when
its cost is at least the threshold (and `min_ms_per_step` per step on average), exceeds the next
most costly rank's by at least half the threshold, that excess is significant (a permutation test: were the ranks exchangeable, the last
arrival of each step would be any rank with equal chance, whatever its lateness; p below ALPHA,
Bonferroni over the ranks), and its lateness has a shape in time (persistent, an onset, a drift,
or a period: `time_shape`), or else costs at least `SHAPELESS_FACTOR` times the threshold in
late steps of one size (a pause at irregular times; a busy host's preemptions, which cost a run
of 4 ms steps 30-40% here, come in every size and have no shape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minicluster.analysis import time_shape
from minicluster.analysis.accounting import Accounting
from minicluster.analysis.steps import r4

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 2000
SHAPELESS_FACTOR = 5.0
MIN_STEPS = 8  # fewer steps than this: no interval, nothing judged


def rule_text(threshold_pct: float, min_ms_per_step: float) -> str:
    return (
        f"cost >= {threshold_pct:g}% of the run's accounted wall time and >= "
        f"{min_ms_per_step:g} ms per step on average, at least "
        f"{threshold_pct / 2:g} points above the next most costly rank's, that excess "
        f"significant (permutation test of who arrived last, p < {ALPHA:g} Bonferroni over the "
        "ranks), and a shape in time (persistent, onset, drift or a period), or a cost "
        f">= {SHAPELESS_FACTOR * threshold_pct:g}% in late steps of one size"
    )


def permutation_p(lateness: np.ndarray, ranks: int, observed: np.ndarray, seed: int) -> np.ndarray:
    """Per rank the p-value of its excess cost (its cost minus the next most costly rank's) were
    the last arrival of each step any rank with equal chance (exchangeable ranks)."""
    rng = np.random.default_rng(seed)
    n = lateness.size
    labels = rng.integers(ranks, size=(RESAMPLES, n))
    # by symmetry every rank has the null distribution of rank 0's excess
    null = null_excess(labels, lateness, ranks)
    above = RESAMPLES - np.searchsorted(np.sort(null), observed, side="left")  # null >= observed
    return (1 + above) / (RESAMPLES + 1)


def null_excess(labels: np.ndarray, lateness: np.ndarray, ranks: int) -> np.ndarray:
    """Per resample (a row of `labels`: each step's last arrival) rank 0's total lateness minus
    the largest other rank's. Only the ranks a resample drew (at most one per step) have a
    total; every other rank's is 0. The totals are summed over (resample, rank) pairs drawn
    only, by one bincount in the draws' order: the same sums as over a [resamples x ranks]
    matrix (260 MB at 16,384 ranks), bit for bit (tests/analysis/test_cost.py)."""
    rows, n = labels.shape
    if ranks <= 32 * n:
        # up to ~32 ranks a step the blocks of the matrix are summed faster than the pairs
        # drawn are found (np.unique sorts them all): 0.03 s against 0.15 at 4,096 x 995
        return null_excess_dense(labels, lateness, ranks)
    pair, at = np.unique((np.arange(rows)[:, None] * ranks + labels).ravel(), return_inverse=True)
    totals = np.bincount(at.ravel(), weights=np.tile(lateness, rows), minlength=pair.size)
    row, rank = pair // ranks, pair % ranks
    mine = np.zeros(rows)
    mine[row[rank == 0]] = totals[rank == 0]
    other = rank != 0
    drawn = np.bincount(row[other], minlength=rows)  # other ranks with a total, per resample
    top = np.full(rows, -np.inf)
    np.maximum.at(top, row[other], totals[other])
    # a rank not drawn has a total of 0
    top = np.where(drawn < ranks - 1, np.maximum(top, 0.0), top)
    return mine - top


def null_excess_dense(labels: np.ndarray, lateness: np.ndarray, ranks: int) -> np.ndarray:
    """`null_excess` over [resamples x ranks] totals, a block of resamples at a time (64k
    totals: 512 kB, warm in the cache and reused from the heap; a block of 4M totals, 32 MB,
    was a mapping of its own faulted in anew, 0.1-0.25 s instead of 0.01 at 4,096 ranks)."""
    block = max(1, min(len(labels), (1 << 16) // max(1, ranks)))
    out = np.empty(len(labels))
    for start in range(0, len(labels), block):
        rows = labels[start : start + block]
        flat = (np.arange(len(rows))[:, None] * ranks + rows).ravel()
        totals = np.bincount(
            flat, weights=np.tile(lateness, len(rows)), minlength=len(rows) * ranks
        ).reshape(len(rows), ranks)
        out[start : start + len(rows)] = totals[:, 0] - totals[:, 1:].max(axis=1)
    return out


def rank_per_step(acc: Accounting) -> tuple[np.ndarray, np.ndarray]:
    """Per step the time saved had each rank alone arrived at the others' pace, all ranks at
    once: a rank saves a step's time only when it arrived last (its own work minus the
    next-to-last rank's); every other rank's row is zero.
    The rows of the ranks that arrived last at least once, and those rows [ranks x steps]."""
    if acc.own.shape[0] < 2:
        return np.array([], np.int64), np.zeros((0, acc.n))
    last, most, second = acc.top_two  # the partition the accounting made of `own`, once
    saved = np.clip(most - second, 0.0, None)
    costly = np.unique(last[saved > 0])
    per = np.zeros((costly.size, acc.n))
    at = np.searchsorted(costly, last)
    hit = saved > 0
    per[at[hit], np.flatnonzero(hit)] = saved[hit]
    return costly, per


def group_per_step(acc: Accounting, groups: list[list[int]]) -> np.ndarray:
    """Per step the time saved had each group of rows (a node's ranks; groups disjoint, two or
    more) arrived at the others' pace: the latest of the group minus the latest of the rest,
    when positive, all groups at once: [groups x steps]; only the group holding a step's last
    arrival saves anything."""
    own = acc.own
    inside = np.stack([own[rows].max(axis=0) for rows in groups])
    last = np.argmax(inside, axis=0)
    second = np.partition(inside, inside.shape[0] - 2, axis=0)[-2]
    cols = np.arange(acc.n)
    per = np.zeros((len(groups), acc.n))
    per[last, cols] = np.clip(inside[last, cols] - second, 0.0, None)
    return per


def excess_over_next(total: np.ndarray) -> np.ndarray:
    """Per rank its total minus the largest of the others' (the top two, not n deletions)."""
    if total.size < 2:
        return np.array([total[i] - np.delete(total, i).max() for i in range(total.size)])
    first = int(np.argmax(total))
    others_max = np.full(total.size, total[first])
    others_max[first] = np.max(np.delete(total, first))
    return total - others_max


def cost_intervals(per: np.ndarray, wall: np.ndarray, seed: int) -> np.ndarray:
    """The bootstrap intervals of cost_pct, [rows x 2], of each row of `per` (a rank's per-step
    cost; the ranks that never arrived last have none: every resample of theirs is 0): paired
    over the steps, percentile, one set of resampled steps for every row. Each row's interval
    is `cost_bootstrap` of 100 x sum(per) / sum(wall) with this `seed` (the same draws from
    the same generator, its quantile), up to the order of the sums; the draws are made once
    and each resample's cost summed from the row's nonzero steps and the times each was drawn,
    not a [rows x resamples x steps] gather (a rank at a time took 25 s at 4,096 ranks).
    tests/analysis/test_aggregate_vectorised.py compares it with `cost_bootstrap`."""
    rows, n = per.shape
    if not rows:
        return np.zeros((0, 2))
    drawn = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    wall_sum = np.take(wall, drawn).sum(axis=-1)
    counts = np.bincount(
        (np.arange(RESAMPLES)[:, None] * n + drawn).ravel(), minlength=RESAMPLES * n
    ).reshape(RESAMPLES, n)
    row, step = np.nonzero(per)  # a step's cost belongs to one rank: at most `n` of them
    cost_sum = np.bincount(
        (np.arange(RESAMPLES)[:, None] * rows + row).ravel(),
        weights=(counts[:, step] * per[row, step]).ravel(),
        minlength=RESAMPLES * rows,
    ).reshape(RESAMPLES, rows)
    theta = 100.0 * cost_sum.T / wall_sum
    alpha = np.asarray((1 - CONFIDENCE) / 2, dtype=theta.dtype)
    return linear_quantiles(theta, np.stack((alpha, 1 - alpha), axis=-1))


def linear_quantiles(theta: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per row of `theta` [rows x samples] its quantiles `p` (1-D), [rows x len(p)]:
    `scipy.stats.quantile(theta, p, axis=-1)` (method `linear`, Hyndman and Fan's type 7), bit
    for bit: its arithmetic on the order statistics it reads, found by one partition instead of
    a sort (tests/analysis/test_cost.py compares them). scipy itself where `theta` holds NaN or
    a -0.0 (which sorts as 0.0 does, in no set order): its import (scipy.stats, half a second)
    is spared where nothing else needs it (a run without a culprit or a drift)."""
    rows, size = theta.shape
    if (
        not rows
        or not size
        or not (p.ndim == 1 and p.size)
        or np.isnan(theta).any()
        or np.signbit(theta[theta == 0]).any()
    ):
        from scipy.stats import quantile  # lazily: scipy.stats takes a while to import

        return np.asarray(quantile(theta, p, axis=-1)).reshape(rows, p.size)
    p = np.broadcast_to(p, (rows, p.size))
    n = np.asarray(size, dtype=theta.dtype)
    jg = p * n + (1 - p)
    jp1 = jg // 1
    j = jp1 - 1
    g = jg % 1
    g[j < 0] = 0
    j, jp1 = np.clip(j, 0.0, n - 1).astype(np.int64), np.clip(jp1, 0.0, n - 1).astype(np.int64)
    kth = np.unique(np.concatenate((j.ravel(), jp1.ravel())))
    y = np.partition(theta, kth, axis=-1)  # the order statistics read, as a sort would place them
    return (1 - g) * np.take_along_axis(y, j, axis=-1) + g * np.take_along_axis(y, jp1, axis=-1)


def cost_bootstrap(
    stat: Callable[..., Any], samples: tuple[np.ndarray, ...], confidence: float, seed: int
) -> tuple[float, float]:
    from scipy.stats import bootstrap  # lazily: scipy.stats takes a while to import

    res = bootstrap(
        samples,
        stat,
        paired=True,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def rank_costs(
    acc: Accounting, threshold_pct: float, min_ms_per_step: float = 0.0
) -> dict[int, dict[str, Any]]:
    """Per rank its `cost` entry (`ranks[].cost`): cost_ms, cost_pct and its interval, the
    excess over the next most costly rank, its permutation p-value, the steps it arrived last,
    and whether it is a culprit (the module's rule; `min_ms_per_step`: the cost's floor per
    measured step on average)."""
    out: dict[int, dict[str, Any]] = {}
    if acc.n < MIN_STEPS or len(acc.ranks) < 2:
        return out
    wall = acc.accounted
    costly, per = rank_per_step(acc)
    total = np.zeros(len(acc.ranks))
    total[costly] = per.sum(axis=1)
    wall_ms = float(wall.sum())
    excess_ms = excess_over_next(total)
    p_values = permutation_p(acc.lateness, len(acc.ranks), excess_ms, seed=acc.n)
    last_steps = np.bincount(acc.last, minlength=len(acc.ranks))
    # one more row for the ranks that never arrived last: a cost of 0 in every step
    found = cost_intervals(np.vstack((per, np.zeros((1, acc.n)))), wall, seed=acc.n)
    intervals = np.broadcast_to(found[-1], (len(acc.ranks), 2)).copy()
    intervals[costly] = found[:-1]
    # Ranks with the same inputs that are not candidates get the same entry: made once (most
    # ranks never arrived last, with cost 0, at 16,384 ranks most of this loop's time)
    # (the key: the inputs' bits, so 0.0 and -0.0 differ and a NaN meets the same NaN)
    same: dict[bytes, dict[str, Any]] = {}
    inputs = np.column_stack((total, excess_ms, p_values, last_steps, intervals)).astype(np.float64)
    keys = np.ascontiguousarray(inputs).view(f"V{inputs.shape[1] * 8}").ravel().tolist()
    for i, (rank, key) in enumerate(zip(acc.ranks, keys, strict=True)):
        if key in same:
            entry = same[key]
            out[rank] = {**entry, "cost_pct_interval": list(entry["cost_pct_interval"])}
            continue
        low, high = intervals[i].tolist()
        cost_pct = 100.0 * float(total[i]) / wall_ms
        excess_pct = 100.0 * float(excess_ms[i]) / wall_ms
        significant = bool(p_values[i] < ALPHA / len(acc.ranks))
        candidate = (
            cost_pct >= threshold_pct
            and excess_pct >= threshold_pct / 2
            and float(total[i]) / acc.n >= min_ms_per_step
            and significant
        )
        shape = time_shape.describe(acc, i) if candidate else None
        out[rank] = {
            "cost_ms": r4(total[i]),
            "cost_pct": r4(cost_pct),
            "cost_pct_interval": [r4(low), r4(high)],
            "confidence": CONFIDENCE,
            "excess_pct": r4(excess_pct),
            "p_value": float(f"{p_values[i]:.3g}"),
            "last_arrival_steps": int(last_steps[i]),
            "steps_compared": acc.n,
            "culprit": bool(
                shape is not None
                and (
                    time_shape.has_shape(shape)
                    or (cost_pct >= SHAPELESS_FACTOR * threshold_pct and time_shape.one_size(shape))
                )
            ),
        }
        if shape is None:  # not a candidate: its entry depends on `key` alone
            same[key] = out[rank]
    return out


def node_costs(acc: Accounting, node_of: dict[int, str]) -> dict[str, dict[str, Any]]:
    """Per node (more than one) its cost: all its ranks at the other nodes' pace at once."""
    names = sorted(set(node_of[r] for r in acc.ranks))
    if len(names) < 2 or acc.n < MIN_STEPS:
        return {}
    wall_ms = float(acc.accounted.sum())
    out = {}
    rows_of: dict[str, list[int]] = {}  # one pass (per node over every rank was quadratic)
    for i, r in enumerate(acc.ranks):
        rows_of.setdefault(node_of[r], []).append(i)
    groups = [rows_of[name] for name in names]
    for name, rows, per in zip(names, groups, group_per_step(acc, groups), strict=True):
        out[name] = {
            "cost_ms": r4(per.sum()),
            "cost_pct": r4(100.0 * float(per.sum()) / wall_ms),
            "ranks": [acc.ranks[i] for i in rows],
        }
    return out


def culprit_shapes(acc: Accounting, costs: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """`time_shape.describe` of each rank the cost rule names (so far), by rank."""
    return {
        rank: time_shape.describe(acc, acc.ranks.index(rank))
        for rank, c in costs.items()
        if c["culprit"]
    }


def culprits(
    costs: dict[int, dict[str, Any]],
    node_of: dict[int, tuple[int | None, str | None, str]],
    shapes: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The culprit ranks, most costly first, each with its node (`node_of`: rank -> node rank,
    hostname, label), its kind (the shape of its lateness in time: `time_shape.describe`), the
    steps it was late in, and the evidence in one line. `shapes`: `culprit_shapes` of these
    ranks (or of more: made before some were set not culprits)."""
    out = []
    for rank, cost in costs.items():
        if not cost["culprit"]:
            continue
        shape = shapes[rank]
        node_rank, hostname, label = node_of.get(rank, (None, None, ""))
        lo, hi = cost["cost_pct_interval"]
        out.append(
            {
                "rank": rank,
                "node_rank": node_rank,
                "hostname": hostname,
                "node": label or None,
                "kind": shape["kind"],
                "cost_pct": cost["cost_pct"],
                "cost_ms": cost["cost_ms"],
                "cost_pct_interval": cost["cost_pct_interval"],
                "steps": shape["late_steps"],
                "shape": shape,
                "summary": f"rank {rank} cost the run {cost['cost_pct']:.0f}%: {shape['text']}",
                "evidence": f"arrived last at the gradient all-reduce in "
                f"{cost['last_arrival_steps']} of {cost['steps_compared']} steps; the others "
                f"waited {cost['cost_ms']:.0f} ms for it in all, {cost['cost_pct']:.1f}% of the "
                f"run's wall time ({100 * cost['confidence']:g}% interval {lo:.1f} to "
                f"{hi:.1f}%), {cost['excess_pct']:.1f} points above the next most costly rank "
                f"(permutation p = {cost['p_value']:.2g})",
            }
        )
    out.sort(key=lambda c: -c["cost_ms"])
    return out
