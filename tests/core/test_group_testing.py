"""The group-testing decision (core.group_testing) on busbw it did not measure: a seeded model
of healthy and bad units, and a recorded run replayed."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from minicluster.core import group_testing as gt


def search(
    n: int, bad: dict[int, float], sigma: float = 0.05, seed: int = 0, **kw: int
) -> gt.State:
    """The whole search on a model: a group's busbw is its slowest unit's speed x lognormal
    noise."""
    rng = random.Random(seed)
    state = gt.start(gt.Params(n_units=n, **kw))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            slowest = min(bad.get(u, 1.0) for u in g.units)
            g.busbw_gbps = 10.0 * slowest * math.exp(rng.gauss(0, sigma))
        gt.record(state, groups)
    return state


def test_four_ranks_one_bad_named_in_fewer_rounds_than_pairs() -> None:
    state = search(4, {2: 0.1})
    assert state.bad == [2]
    assert len(state.rounds) < 4 * 3 // 2
    assert state.stop_reason == "nothing left to test"


def test_clean_fleets_name_nobody() -> None:
    for seed in range(20):
        for n in (4, 8, 64):
            assert search(n, {}, seed=seed).bad == []


@pytest.mark.parametrize("bad", [[5], [5, 900], [1, 2, 700]])
def test_1024_units_up_to_three_bad_found_in_few_rounds(bad: list[int]) -> None:
    state = search(1024, {u: 0.4 for u in bad})
    assert state.bad == bad
    assert len(state.rounds) <= 44
    assert not state.more_than_max_bad


def test_more_than_k_bad_are_named_and_said() -> None:
    state = search(1024, {u: 0.3 for u in (1, 9, 17, 25)}, max_bad=3)
    assert state.more_than_max_bad
    assert state.bad == [1, 9, 17, 25]


def test_replay_gives_the_same_verdict_and_refuses_other_groups() -> None:
    live = search(16, {3: 0.2})
    recorded = [[(g.units, g.busbw_gbps, g.wrong) for g in r] for r in live.rounds]
    again = gt.replay(live.params, recorded)
    assert again.bad == live.bad == [3]
    assert [[g.slow for g in r] for r in again.rounds] == [[g.slow for g in r] for r in live.rounds]
    recorded[1][0] = ((5, 6), 1.0, 0)
    with pytest.raises(ValueError, match="round 2"):
        gt.replay(live.params, recorded)


def test_wrong_elements_make_a_group_slow_and_its_unit_bad() -> None:
    state = gt.start(gt.Params(n_units=4))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            g.busbw_gbps, g.wrong = 1.0, (5 if 1 in g.units else 0)
        gt.record(state, groups)
    assert state.bad == [1]


def test_bad_params_are_value_errors() -> None:
    with pytest.raises(ValueError, match="2 units or more"):
        gt.Params(n_units=1)
    with pytest.raises(ValueError, match="group_size"):
        gt.Params(n_units=4, group_size=5)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "isolate"


def measured_noise() -> list[float]:
    """ln(busbw / round median) of the healthy groups of clean isolate runs recorded here (the
    heavy tail of a shared host: 9% of them below half the median)."""
    out = []
    for f in sorted(FIXTURES.glob("passes5/*.json")):
        for rnd in json.loads(f.read_text())["isolate"]["rounds"]:
            by_size: dict[int, list[float]] = {}
            for g in rnd["groups"]:
                by_size.setdefault(len(g["units"]), []).append(g["busbw_gbps"])
            for bws in by_size.values():
                if len(bws) >= 2:
                    mid = statistics.median(bws)
                    out.extend(math.log(b / mid) for b in bws)
    return out


def search_noise(
    n: int, bad: dict[int, float], noise: list[float], seed: int, **kw: Any
) -> gt.State:
    rng = random.Random(seed)
    state = gt.start(gt.Params(n_units=n, **kw))
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            slowest = min(bad.get(u, 1.0) for u in g.units)
            g.busbw_gbps = 10.0 * slowest * math.exp(rng.choice(noise))
        gt.record(state, groups)
    return state


def test_measured_heavy_tailed_noise_pulls_no_healthy_unit() -> None:
    """Healthy fleets under the noise measured here: nobody is named bad; the old rule (2 slow
    tests) names healthy units under the same noise, so the test can fail."""
    noise = measured_noise()
    assert len(noise) > 40 and min(noise) < math.log(0.3)
    sprt = [search_noise(n, {}, noise, seed).bad for n in (4, 8, 64) for seed in range(40)]
    assert sprt == [[]] * len(sprt)
    old = [
        search_noise(n, {}, noise, seed, decision="confirmations").bad
        for n in (4, 8, 64)
        for seed in range(40)
    ]
    assert any(old)


def test_noise_slow_node_found_without_false_pulls() -> None:
    noise = measured_noise()
    found = 0
    for seed in range(20):
        state = search_noise(64, {17: 0.4}, noise, seed)
        assert set(state.bad) <= {17}
        found += state.bad == [17]
    assert found >= 16


def test_one_stalled_reading_never_names_a_unit() -> None:
    """Unit 5 reads at 0.1% of healthy in one test only (a stalled host), then healthy: it is
    not named; each test's evidence is capped so min_agree slow tests must agree."""
    p = gt.Params(n_units=16)
    cap = gt.thresholds(p, unit=True)[0] / p.min_agree
    assert gt.llr(math.log(1e-6), 0.1, p) > cap  # uncapped, one reading would decide
    stalled = {"left": 2}
    state = gt.start(p)
    while (groups := gt.plan(state)) is not None:
        for g in groups:
            g.busbw_gbps = 10.0
            if 5 in g.units and g.role != gt.SCREEN and stalled["left"]:
                stalled["left"] -= 1
                g.busbw_gbps = 0.01
            elif 5 in g.units and g.role == gt.SCREEN and len(state.rounds) == 0:
                g.busbw_gbps = 0.01
        gt.record(state, groups)
    assert state.bad == []
    assert all(g.llr is None or g.llr <= cap * (1 + 1e-6) for r in state.rounds for g in r)


def test_recorded_runs_of_the_first_rule_replay_with_it() -> None:
    """A run recorded before the SPRT (params without `decision`) replays with the first rule:
    the same rounds are planned and every unit gets its recorded status."""
    files = sorted(FIXTURES.glob("*/*.json"))
    assert len(files) >= 10
    for f in files:
        block = json.loads(f.read_text())["isolate"]
        params = gt.params_from_record(block["params"])
        assert params.decision == gt.CONFIRMATIONS
        measured = [
            [(tuple(g["units"]), g["busbw_gbps"], g["wrong"] or 0) for g in rnd["groups"]]
            for rnd in block["rounds"]
        ]
        state = gt.replay(params, measured)
        assert [state.status[u["unit"]] for u in block["units"]] == [
            u["status"] for u in block["units"]
        ], f
        assert gt.params_from_record({**block["params"], "decision": "sprt"}).decision == "sprt"


def test_sim_isolate_prints_the_table_from_measured_noise() -> None:
    """scripts/sim_isolate.py: the measured --passes 5 noise (its default), a row per fleet
    size and number of bad nodes, the false pulls and the pairwise pairs beside it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "sim_isolate.py"), "--sizes", "8,64",
         "--trials", "5", "--healthy-trials", "10"],
        capture_output=True, text=True, timeout=300, cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "64 measured healthy groups" in proc.stdout and "decision='sprt'" in proc.stdout
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| 8 ")]
    assert len(rows) == 4 and rows[0][9].strip() == "28"
    healthy = [
        line for line in proc.stdout.splitlines() if line.startswith(("| 8 | 0 ", "| 64 | 0 "))
    ]
    assert [h.split("|")[7].strip() for h in healthy] == ["0", "0"]  # false pulls


def test_stage2_names_a_node_at_70_percent_that_stage1_leaves_undecided() -> None:
    """A node at 70% of healthy under the measured noise: without stage 2 (the rule before) it
    often ends unresolved; with it (the default) it is named, and no healthy node is."""
    noise = measured_noise()
    before = after = 0
    for seed in range(10):
        old = search_noise(
            64, {17: 0.7}, noise, seed, stage2_tests=0, beta=0.01, group_beta=0.05,
            clear_agree=0, controls=0, rotate_partners=False,
        )  # fmt: skip
        new = search_noise(64, {17: 0.7}, noise, seed)
        assert set(old.bad) <= {17} and set(new.bad) <= {17}
        before += old.bad == [17]
        after += new.bad == [17]
    assert after > before


def test_sprt_records_without_the_new_keys_replay_without_them() -> None:
    """A plan recorded before stage 2 (no stage2_tests, controls, clear_agree, rotate_partners
    keys) replays with them off: the rounds it ran are the rounds planned."""
    p = gt.params_from_record({"n_units": 8, "decision": "sprt", "beta": 0.01, "group_beta": 0.05})
    assert (p.stage2_tests, p.controls, p.clear_agree, p.rotate_partners) == (0, 0, 0, False)
    assert gt.Params(n_units=8).group_miss == 1e-3 and gt.Params(n_units=4).group_miss == 0.05
