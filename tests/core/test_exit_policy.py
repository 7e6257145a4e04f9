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


def test_not_judged_is_one_code_in_every_command() -> None:
    """Trial 2 item 1: `collectives --pattern pairwise --nproc 2` said NOT JUDGED and exited 1
    (its own row, `pairs_not_judged`) while NOT JUDGED exits 2 in fleet, history check, watch
    and diagnose. One row now: NOT JUDGED is 2 wherever it is said; a finding beside it (a wrong
    element, a slow pair) still decides 1, a failed run 3."""
    not_judged = [v for v in POLICY if "NOT JUDGED" in v.meaning or "not judged" in v.meaning]
    assert [v.name for v in not_judged] == ["not_judged"]
    assert "pairs_not_judged" not in {v.name for v in POLICY}
    assert "collectives --pattern pairwise" in not_judged[0].commands
    assert code_for(["not_judged"]) == 2
    assert code_for(["not_judged", "wrong_numbers"]) == 1
    assert code_for(["not_judged", "slow_link"]) == 1
    assert code_for(["not_judged", "run_failed"]) == 3
    # a real 2-rank `collectives --pattern pairwise` result (the trial's, on main before this)
    fixture = REPO / "tests" / "fixtures" / "pairwise" / "two_ranks_not_judged.result.json"
    result = RunResult.from_json(json.loads(fixture.read_text()))
    assert result.pairwise is not None and result.pairwise.not_judged
    assert verdicts(result) == ["not_judged"] and exit_code(result) == 2


def test_the_header_names_the_findings_in_policy_order_as_the_readme_says() -> None:
    """Trial 2 item 2: the README listed the header's order as `..., STRAGGLER, CULPRIT,
    INCOMPLETE, FAILED`; real headers read `FAILED, STRAGGLER, CULPRIT`. The header follows the
    policy (the deciding verdict first) whatever order the verdicts were found in, and the
    README's example order is the policy's."""
    from minicluster.report.text import VERDICT_WORDS, headline

    assert headline(["culprit", "straggler", "run_failed"]) == "FAILED, STRAGGLER, CULPRIT"
    assert headline(["straggler", "incomplete", "culprit"]) == "INCOMPLETE, STRAGGLER, CULPRIT"
    assert headline(["validation_failed", "wrong_numbers"]) == "WRONG NUMBERS, FAILED validation"
    assert headline([]) == "ok"
    readme = (REPO / "README.md").read_text()
    said = readme.split("the findings in the exit-code policy's order", 1)[1].split(": e.g.")[0]
    listed = [w for w in said.split("`")[1::2] if w not in ("FAILED", "INCOMPLETE")]
    by_words = {w: n for n, w in VERDICT_WORDS.items()}
    names = [v.name for v in POLICY]
    assert [names.index(by_words[w]) for w in listed] == sorted(
        names.index(by_words[w]) for w in listed
    )
