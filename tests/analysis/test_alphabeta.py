"""The alpha-beta ring all-reduce model against hand-computed values, and its fit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from minicluster.analysis.alphabeta import (
    Link,
    LinkModel,
    fit_link,
    given_link,
    link_from_collectives,
)
from minicluster.core.errors import InputError
from minicluster.result.model import RunResult

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def link(alpha_us: float, beta_gbps: float) -> Link:
    return Link(alpha_us, beta_gbps, "test")


def test_flat_ring_matches_the_formula_by_hand() -> None:
    m = LinkModel(link(10.0, 1.0))
    # 2(4-1) * 10 us + 2(4-1)/4 * 1e6 B / (1 GB/s = 1e3 B/us) = 60 + 1500 us
    assert m.allreduce_us(4, 1e6) == pytest.approx(1560.0)
    # Three buckets: the latency term counts per bucket, the bytes once in all.
    assert m.allreduce_us(4, 1e6, messages=3) == pytest.approx(3 * 60.0 + 1500.0)
    assert m.allreduce_us(1, 1e6) == 0.0  # one rank: nothing to move
    # 1024 ranks: 2 * 1023 * 10 + 2 * 1023 / 1024 * 1e6 / 1e3
    assert m.allreduce_us(1024, 1e6) == pytest.approx(20460.0 + 1998.046875)


def test_two_level_ring_matches_the_formula_by_hand() -> None:
    intra, inter = link(2.0, 100.0), link(5.0, 10.0)
    m = LinkModel(inter, intra, ranks_per_node=8)
    # 64 ranks = 8 nodes of 8. Inside a node: 2*7*2 + 2*7/8 * 8e6 / 1e5 = 28 + 140 us;
    # across nodes, each rank's 8e6 / 8 = 1e6 B shard: 2*7*5 + 2*7/8 * 1e6 / 1e4 = 70 + 175 us.
    assert m.allreduce_us(64, 8e6) == pytest.approx(168.0 + 245.0)
    # Two buckets: each pays both latency terms (28 + 70 us) once more.
    assert m.allreduce_us(64, 8e6, messages=2) == pytest.approx(413.0 + 98.0)
    # Within one node: a flat ring on the intra-node link.
    assert m.allreduce_us(4, 8e6) == pytest.approx(LinkModel(intra).allreduce_us(4, 8e6))
    # One rank per node: a flat ring on the inter-node link.
    flat = LinkModel(inter, intra, ranks_per_node=1)
    assert flat.allreduce_us(16, 8e6) == pytest.approx(LinkModel(inter).allreduce_us(16, 8e6))
    assert m.fits(12) == "12 ranks do not fill whole nodes of 8 ranks (--ranks-per-node)"
    with pytest.raises(ValueError, match="whole nodes"):
        m.allreduce_us(12, 1e6)
    assert "two-level ring" == m.to_dict()["levels"] and "M = n / G" in m.formula


def test_fit_recovers_known_parameters_and_discounts_a_noisy_point() -> None:
    sizes = [1024.0 * 2**k for k in range(12)]
    truth = LinkModel(link(50.0, 2.0))
    times = [truth.allreduce_us(4, b) for b in sizes]
    got = fit_link(sizes, times, 4, "synthetic")
    assert got.alpha_us == pytest.approx(50.0, rel=1e-6)
    assert got.beta_gbps == pytest.approx(2.0, rel=1e-6)
    assert got.fit is not None and got.fit["rms_relative_residual_pct"] < 1e-6
    noisy = list(times)
    noisy[0] *= 5  # one small size 5x slow (a scheduler hiccup)
    robust = fit_link(sizes, noisy, 4, "synthetic")
    assert robust.alpha_us == pytest.approx(50.0, rel=0.05)
    assert robust.beta_gbps == pytest.approx(2.0, rel=0.05)
    # The noisy point keeps its residual: (model - 5 t) / 5 t = -80%.
    assert robust.fit is not None and robust.fit["max_relative_residual_pct"] == pytest.approx(
        80.0, abs=1.0
    )


@pytest.mark.parametrize(
    ("sizes", "times", "n", "message"),
    [
        ([1024.0, 2048.0], [10.0, 20.0], 1, "moves no data"),
        ([1024.0, 1024.0], [10.0, 11.0], 2, "two or more sizes"),
        ([1024.0, 2048.0], [10.0, 0.0], 2, "positive"),
        ([1024.0, 1e6], [100.0, 100.0], 2, "do not grow with the size"),
    ],
)
def test_fit_refuses_data_that_cannot_give_alpha_and_beta(
    sizes: list[float], times: list[float], n: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_link(sizes, times, n, "x")


def test_a_real_collectives_result_gives_a_link() -> None:
    coll = json.loads((GOLDEN / "reports" / "collectives.result.json").read_text())
    got = link_from_collectives(RunResult.from_json(coll), "collectives.result.json")
    assert got.alpha_us >= 0 and got.beta_gbps > 0
    assert got.fit is not None and got.fit["world_size"] == coll["world_size"] == 2
    rows = [r for r in coll["collectives"]["results"] if r["op"] == "all_reduce"]
    assert got.fit["sizes"] == len(rows)
    assert f"collectives run {coll['run_id']} (2 ranks, gloo" in got.source


def test_collectives_inputs_that_cannot_make_a_link_are_input_errors() -> None:
    coll = json.loads((GOLDEN / "reports" / "collectives.result.json").read_text())
    run = json.loads((GOLDEN / "reports" / "run_ok.result.json").read_text())
    with pytest.raises(InputError, match="not a collectives result"):
        link_from_collectives(RunResult.from_json(run), "run.json")
    one = copy.deepcopy(coll)
    one["collectives"]["world_size"] = 1
    with pytest.raises(InputError, match="over 1 rank moves no data"):
        link_from_collectives(RunResult.from_json(one), "one.json")
    wrong = copy.deepcopy(coll)
    for r in wrong["collectives"]["results"]:
        r["wrong"] = 3  # every all_reduce gave wrong elements: none may be fitted
    with pytest.raises(InputError, match="measured, correct all_reduce times"):
        link_from_collectives(RunResult.from_json(wrong), "wrong.json")


def test_given_link_values_are_checked() -> None:
    assert given_link(12.5, 5.0, "--link-gbps").beta_gbps == 12.5
    with pytest.raises(InputError, match="bandwidth must be > 0"):
        given_link(0.0, 5.0, "--link-gbps")
    with pytest.raises(InputError, match="latency must be >= 0"):
        given_link(1.0, -1.0, "--link-gbps")
