"""The scoring of `scripts/check_attribution.py` on hand-made rows: the confusion matrix, the
intervals, the cost reference (nearest healthy runs in time, all of them), the A/A control, and
that a saved set scores the same twice (`--score`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import script_module

ca = script_module.load("check_attribution")


def _row(i: int, kind: str, wall: float, rank: int | None = None, **kw: Any) -> dict[str, Any]:
    row = {
        "index": i,
        "kind": kind,
        "rank": rank,
        "start": 10.0 * i,
        "end": 10.0 * i + 5,
        "named": "none",
        "named_rank": None,
        "rank_cost_pct": {"0": 1.0, "1": 2.0},
        "wall_ms": wall,
        "verdict_s": 1.0,
    }
    row.update(kw)
    return row


def test_confusion_counts_the_top_culprits_kind_per_injected_kind() -> None:
    rows = [
        _row(0, "pause", 100, 1, named="intermittent", named_rank=1),
        _row(1, "pause", 100, 0, named="none"),
        _row(2, "pause", 100, 0, named="intermittent", named_rank=1),
        _row(3, "healthy", 50),
    ]
    m = ca.confusion(rows)
    assert m["pause"] == {"intermittent": 2, "none": 1}
    assert m["healthy"] == {"none": 1}
    figures = ca.score(rows)
    assert figures["top1"] == [1, 3]  # row 2 named the wrong rank
    assert figures["kind"] == [2, 3]
    assert figures["false"] == [0, 1]


def test_wilson_interval_brackets_the_rate_and_is_none_without_data() -> None:
    assert ca.wilson(0, 0) is None
    low, high = ca.wilson(30, 30)
    assert high == pytest.approx(1.0) and 0.88 < low < 0.9  # 30 of 30: at least 88.6%
    low, high = ca.wilson(5, 10)
    assert low < 0.5 < high


def test_median_interval_is_deterministic_and_contains_the_median() -> None:
    values = [float(v) for v in range(-10, 21)]
    m, low, high = ca.median_ci(values)
    assert m == 5.0 and low <= m <= high and high - low < 20
    assert ca.median_ci(values) == (m, low, high)
    assert ca.median_ci([1.0]) is None


def test_nearest_reference_uses_the_healthy_runs_beside_the_run_in_time() -> None:
    """Healthy runs 200 ms early in the session and 100 ms late (the load changed): a faulty run
    late in the session is measured against the late healthy runs by `nearest`."""
    rows = [_row(i, "healthy", 200.0) for i in range(4)]
    rows += [_row(i, "healthy", 100.0) for i in range(4, 8)]
    rows.append(_row(8, "persistent", 150.0, 1, rank_cost_pct={"0": 0.0, "1": 30.0}))
    assert ca.reference(rows, 8, "nearest") == 100.0
    assert ca.reference(rows, 8, "all") == 150.0
    (err,) = ca.cost_errors(rows, "nearest", healthy=False)
    assert err["measured"] == pytest.approx(100 * 50 / 150)
    assert err["estimated"] == 30.0  # the injected rank's cost, not the other's
    assert err["error"] == pytest.approx(30.0 - 100 * 50 / 150)


def test_aa_control_leaves_the_run_itself_out_and_uses_the_costliest_rank() -> None:
    rows = [_row(i, "healthy", w) for i, w in enumerate([100.0, 100.0, 100.0, 125.0])]
    aa = {e["index"]: e for e in ca.cost_errors(rows, "all", healthy=True)}
    assert aa[3]["measured"] == pytest.approx(20.0)  # 125 against the other three's 100
    assert aa[3]["estimated"] == 2.0 and aa[3]["error"] == pytest.approx(-18.0)
    assert aa[0]["measured"] == 0.0


def test_plan_spreads_the_healthy_runs_through_the_sequence() -> None:
    plan = ca.plan_runs(["pause", "drift"], episodes=5, healthy=5, seed=3)
    assert len(plan) == 15
    at = [i for i, p in enumerate(plan) if p["kind"] == "healthy"]
    assert len(at) == 5 and max(b - a for a, b in zip(at, at[1:], strict=False)) == 3
    assert (
        sorted(p["kind"] for p in plan if p["kind"] != "healthy") == ["drift"] * 5 + ["pause"] * 5
    )
    assert plan == ca.plan_runs(["pause", "drift"], episodes=5, healthy=5, seed=3)


def test_score_of_a_saved_set_prints_the_same_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [_row(i, "healthy", 100.0 + 7 * (i % 3)) for i in range(6)]
    rows += [
        _row(6 + i, "onset", 160.0 + i, i % 2, named="onset", named_rank=i % 2) for i in range(4)
    ]
    for r in rows[6:]:
        r["rank_cost_pct"] = {str(r["rank"]): 35.0}
    saved = tmp_path / "attribution.json"
    saved.write_text(json.dumps({"meta": {"cpus": 2}, "rows": rows}))
    assert ca.main(["--score", str(saved)]) == 0
    first = capsys.readouterr().out
    assert ca.main(["--score", str(saved)]) == 0
    assert capsys.readouterr().out == first
    assert "top-1 culprit rank: 4/4 = 100%" in first
    assert "A/A, healthy runs" in first and "3 nearest healthy runs" in first


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ca.main(["--kinds", "nosuch", "--out", str(tmp_path)]) == 2
    assert "unknown kind 'nosuch'" in capsys.readouterr().err
    bad = tmp_path / "x.json"
    bad.write_text("{")
    with pytest.raises(SystemExit) as exc:
        ca.main(["--score", str(bad)])
    assert exc.value.code == 2 and "cannot read" in capsys.readouterr().err


def test_sets_run_side_by_side_merge_in_time_order() -> None:
    a = {"meta": {}, "rows": [_row(0, "healthy", 100.0), _row(2, "pause", 150.0, 1)]}
    b = {"meta": {}, "rows": [_row(1, "healthy", 120.0)]}
    merged = ca.merge([a, b])
    assert [r["wall_ms"] for r in merged["rows"]] == [100.0, 120.0, 150.0]
    assert [r["index"] for r in merged["rows"]] == [0, 1, 2]


def test_within_run_compares_the_faults_steps_with_the_runs_own_fault_free_steps() -> None:
    """Two ranks, 1 ms of own work and a 2 ms transfer a step; rank 1 pauses 10 ms every 5th
    step and the step then takes 3 ms longer than the pause alone (what the what-if cannot see):
    measured 13 ms a fault step, charged 10."""
    from minicluster.analysis.accounting import Accounting
    from minicluster.core import fault_spec

    steps = np.arange(3, 43)
    fault = fault_spec.parse("pause:rank=1,delay_ms=10,every=5")
    on = np.array([fault.delay_at_ms(int(s)) > 0 for s in steps])
    host = np.full((2, 40), 0.5)
    host[1, on] += 10.0
    compute = np.full((2, 40), 0.5)
    own = host + compute
    step = own.max(axis=0) + 2.0 + np.where(on, 3.0, 0.0)
    acc = Accounting([0, 1], steps, host, compute, step - own, np.tile(step, (2, 1)))
    got = ca.within_acc(acc, fault, 1)
    wall = float(step.sum())
    assert got["steps"] == 8
    assert got["measured"] == pytest.approx(100 * 8 * 13 / wall)
    assert got["estimated"] == pytest.approx(100 * 8 * 10 / wall)
    assert ca.within_acc(acc, fault_spec.parse("pause:rank=1,delay_ms=10"), 1) is None
    rows = [_row(0, "pause", wall, 1, within=got)]
    (w,) = ca.within_errors(rows, {"pause": ("pause:rank={rank},delay_ms=10,every=5", "x")})
    assert w["error"] == pytest.approx(-100 * 8 * 3 / wall)


def test_reference_noise_is_the_disagreement_of_two_disjoint_healthy_references() -> None:
    rows = [_row(i, "healthy", 100.0) for i in range(3)]
    rows.append(_row(3, "drift", 200.0, 0))
    rows += [_row(i, "healthy", 120.0) for i in range(4, 7)]
    rows += [_row(i, "healthy", 160.0) for i in range(7, 10)]  # the farthest: in neither
    # nearest 3: two of 100 and one of 120 (ties broken by order), next 3: 100 and two of 120
    assert ca.reference(rows, 3, "nearest") == 100.0
    assert ca.reference(rows, 3, "next") == 120.0
    assert ca.reference_noise(rows) == [pytest.approx(100 * 20 / 200)]
