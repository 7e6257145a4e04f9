"""One exit-code policy: the table in core, the README's table, and what results earn by it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from minicluster.analysis.verdicts import exit_code, verdicts
from minicluster.core.exit_policy import POLICY, code_for, markdown_table
from minicluster.result.model import RunResult

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_holds_the_policy_table() -> None:
    assert markdown_table() in (REPO / "README.md").read_text()


def test_the_first_verdict_in_policy_order_decides() -> None:
    assert code_for([]) == 0
    assert code_for(["straggler"]) == 1
    assert code_for(["straggler", "run_failed"]) == 3
    assert code_for(["interrupted", "slow_link"]) == 130
    assert len({v.name for v in POLICY}) == len(POLICY)
    with pytest.raises(KeyError, match="not in the exit-code policy"):
        code_for(["meltdown"])


def test_a_straggler_run_exits_1_like_watch() -> None:
    """Issue 25 item 10: `run --fault straggler:...` named the straggler and exited 0."""
    data = json.loads((REPO / "reports" / "straggler_run.result.json").read_text())
    result = RunResult.from_json(data)
    assert result.status == "ok" and result.stragglers
    assert verdicts(result) == ["straggler"]
    assert exit_code(result) == 1
    healthy = copy.deepcopy(data)
    healthy["stragglers"] = []
    healthy["faults"]["detected"] = []
    assert exit_code(RunResult.from_json(healthy)) == 0


def test_a_failed_validation_exits_1() -> None:
    data = json.loads((REPO / "tests" / "golden" / "run_2ranks.result.json").read_text())
    data["validation"] = {
        "passed": False,
        "reason": "DDP parameters differ",
        "checks": [{"name": "ddp_equivalence", "passed": False, "reason": "differ"}],
    }
    assert verdicts(RunResult.from_json(data)) == ["validation_failed"]
    assert exit_code(RunResult.from_json(data)) == 1
