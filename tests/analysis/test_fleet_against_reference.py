"""`fleet(..., reference=)` on a recorded node check: each node judged on its measured figures
under their conditions (the multi-node case is in test_fleet.py, beside its fixture)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from minicluster.analysis import reference_site
from minicluster.analysis.fleet import fleet

NODECHECK = Path(__file__).resolve().parents[1] / "fixtures" / "nodecheck" / "trial_nc1.result.json"


def _node(i: int, gemm_factor: float = 1.0) -> tuple[str, dict[str, Any]]:
    data = json.loads(NODECHECK.read_text())
    data = copy.deepcopy(data)
    data["run_id"] = f"nc-{i}"
    data["platform"]["hostname"] = f"host{i}"
    for c in data["checks"]:
        if c.get("metric") == "gemm_tflops" and c.get("value") is not None:
            c["value"] *= gemm_factor
    return f"host{i}.json", data


def test_node_checks_are_judged_per_figure_and_a_slow_gemm_is_below_the_floor() -> None:
    ref = reference_site.record([_node(0)], "site-nc", today="2026-12-06")
    nodes = [_node(1), _node(2), _node(3), _node(4, gemm_factor=0.5)]
    report = fleet(nodes, reference=ref, floor_pct=90.0)
    assert report["reference"]["name"] == "site-nc" and report["reference"]["kind"] == "site"
    assert report["below_reference"] == ["host4"]
    rows = {r["label"]: r for r in report["nodes"]}
    slow = rows["host4"]["against_reference"]
    assert slow["verdict"] == "below_floor"
    gemm = [m for m in slow["metrics"] if m["metric"] == "gemm_tflops"]
    assert len(gemm) == 4 and all(m["pct_of_reference"] == pytest.approx(50.0) for m in gemm)
    triad = next(m for m in slow["metrics"] if m["metric"] == "host_triad_gbps")
    assert triad["verdict"] == "ok" and triad["pct_of_reference"] == pytest.approx(100.0)
    assert rows["host1"]["against_reference"]["verdict"] == "ok"
    assert any(e.startswith("reference site-nc") for e in rows["host4"]["evidence"])
