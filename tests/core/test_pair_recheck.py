"""The re-measure's pure parts (`core.pair_recheck`): the ranks' flag rule is the analysis's,
the schedule alternates the flagged pair with healthy ones, and the median's upper bound has
the coverage it states."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from minicluster.analysis.pair_verdict import judge
from minicluster.core import pair_recheck


def test_the_ranks_flag_the_pairs_the_analysis_judges_slow() -> None:
    rng = random.Random(7)
    pairs = list(itertools.combinations(range(6), 2))
    agreed = 0
    for trial in range(300):
        bw = {p: rng.lognormvariate(0, rng.choice([0.05, 0.2, 0.5])) for p in pairs}
        if trial % 3 == 0:
            bw[pairs[trial % len(pairs)]] *= rng.uniform(0.05, 0.6)
        floor, min_bw = rng.choice([0.0, 0.1, 0.2]), rng.choice([None, 0.5])
        rows = [{"a": a, "b": b, "busbw_gbps": bw[(a, b)], "z": None, "slow": False,
                 "why_slow": None} for a, b in pairs]  # fmt: skip
        judge(rows, 3.5, min_bw, floor)
        expected = [(r["a"], r["b"]) for r in rows if r["slow"]]
        assert pair_recheck.flagged(bw, 3.5, min_bw, floor) == expected
        agreed += bool(expected)
    assert agreed > 50  # the comparison covered flagged pairs, not only clean sets


def test_the_schedule_alternates_the_flagged_pair_with_healthy_ones_apart_first() -> None:
    healthy = [(0, 1), (0, 3), (1, 3), (2, 3)]
    plan = pair_recheck.schedule((1, 2), healthy, 4)
    assert plan == [
        (0, "flagged", (1, 2)), (0, "reference", (0, 3)),
        (1, "reference", (0, 1)), (1, "flagged", (1, 2)),
        (2, "flagged", (1, 2)), (2, "reference", (1, 3)),
        (3, "reference", (2, 3)), (3, "flagged", (1, 2)),
    ]  # fmt: skip
    assert pair_recheck.schedule((1, 2), [], 4) == []


def test_the_upper_bound_is_an_order_statistic_with_its_stated_coverage() -> None:
    xs = [0.1 * i for i in range(1, 9)]
    hi, conf = pair_recheck.median_upper_bound(xs)
    assert hi == xs[6] and math.isclose(conf, 1 - 9 / 256)  # 8 values: the 2nd largest
    hi, conf = pair_recheck.median_upper_bound(xs[:5])
    assert hi == xs[4] and math.isclose(conf, 1 - 1 / 32)  # 5: the largest
    hi, conf = pair_recheck.median_upper_bound(xs[:3])
    assert hi == xs[2] and math.isclose(conf, 1 - 1 / 8)  # too few for 95%: says so
    # coverage checked by simulation: the bound is at or above the true median >= conf
    rng = random.Random(1)
    covered = sum(
        pair_recheck.median_upper_bound([rng.gauss(0, 1) for _ in range(8)])[0] >= 0
        for _ in range(4000)
    )
    assert covered / 4000 > 0.95


def test_min_rounds_is_the_fewest_whose_bound_reaches_the_confidence() -> None:
    from minicluster.core.pair_recheck import CONFIDENCE, median_upper_bound, min_rounds

    n = min_rounds()
    assert n == 5
    assert median_upper_bound([1.0] * n)[1] >= CONFIDENCE
    assert median_upper_bound([1.0] * (n - 1))[1] < CONFIDENCE
    assert min_rounds(0.99) == 7 and min_rounds(0.5) == 1


def test_a_re_measure_too_short_to_reach_its_confidence_is_refused() -> None:
    from minicluster.core.config import CollectivesSection
    from minicluster.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"recheck_rounds.*is 1: .* at least 5 rounds"):
        CollectivesSection(pattern="pairwise", recheck_rounds=1)
    for rounds in (0, 5, 8):  # off, or enough
        assert (
            CollectivesSection(pattern="pairwise", recheck_rounds=rounds).recheck_rounds == rounds
        )
