"""Re-analysis of recorded isolate rounds (analysis.isolate.isolate_block): runs recorded before
the sequential decision (their plan's params have no `decision`) give their recorded verdict
again, and the same records always give the same block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minicluster.analysis.isolate import isolate_block
from minicluster.analysis.records import RankRecords

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "isolate"


def records_of(block: dict[str, Any], drop_decision: bool = True) -> list[RankRecords]:
    """The plan and round records a rank wrote, rebuilt from a recorded result's block."""
    params = {k: v for k, v in block["params"].items() if k != "first_group_size"}
    if drop_decision:
        params.pop("decision", None)
    plan = {
        "per": block["per"],
        "participants": [u["ranks"][0] for u in block["units"]],
        "nodes": [u["node"] for u in block["units"]],
        "size_bytes": block["size_bytes"],
        "params": params,
    }
    rounds = [
        {
            "round": r["round"],
            "groups": [g["units"] for g in r["groups"]],
            "busbw_gbps": [g["busbw_gbps"] for g in r["groups"]],
            "wrong": [g["wrong"] or 0 for g in r["groups"]],
        }
        for r in block["rounds"]
    ]
    return [RankRecords(0, other={"isolate_plan": [plan], "isolate_round": rounds})]


def test_recorded_runs_replay_to_their_recorded_verdict() -> None:
    files = sorted(FIXTURES.glob("*/*.json"))
    assert files
    for f in files:
        recorded = json.loads(f.read_text())["isolate"]
        block, errors = isolate_block(records_of(recorded), len(recorded["units"]))
        assert errors == [], f
        assert block["verdict"] == recorded["verdict"], f
        assert [u["status"] for u in block["units"]] == [u["status"] for u in recorded["units"]]
        assert block["params"]["decision"] == "confirmations"
        again, _ = isolate_block(records_of(recorded), len(recorded["units"]))
        assert again == block


def test_the_same_rounds_under_the_sprt_do_not_replay() -> None:
    """The SPRT plans other rounds: a recorded run is judged by the rule it ran, never another
    one silently (said as an error)."""
    recorded = json.loads((FIXTURES / "passes2" / "clean_8ranks_1.result.json").read_text())
    recorded = recorded["isolate"]
    assert len(recorded["rounds"]) == 4
    recs = records_of(recorded)
    recs[0].other["isolate_plan"][0]["params"]["decision"] = "sprt"
    block, errors = isolate_block(recs, len(recorded["units"]))
    assert any("do not replay: round 2" in e for e in errors), errors


RUN_DIR_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "isolate_v1_rundir"


def test_a_recorded_isolate_run_dir_of_the_first_rule_aggregates_to_its_verdict(
    tmp_path: Path,
) -> None:
    """Rank files written by the isolate before the sequential decision (4 ranks, slow_link on
    rank 1, --passes 2; recorded.result.json is what that version wrote): `aggregate DIR` gives
    the same rounds, units and verdict, twice over."""
    import shutil

    from minicluster.cli import main

    recorded = json.loads((RUN_DIR_V1 / "recorded.result.json").read_text())["isolate"]
    assert "decision" not in recorded["params"]
    blocks = []
    for i in range(2):
        run = tmp_path / f"run{i}"
        shutil.copytree(RUN_DIR_V1, run)
        assert main(["aggregate", str(run)]) == 1
        blocks.append(json.loads((run / "result.json").read_text())["isolate"])
    assert blocks[0] == blocks[1]
    block = blocks[0]
    assert block["verdict"] == recorded["verdict"] and block["bad"] == ["rank 1"]
    assert block["rounds"] == recorded["rounds"] and block["units"] == recorded["units"]
    assert block["params"]["decision"] == "confirmations"
