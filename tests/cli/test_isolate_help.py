"""`isolate --help` says the decision rule the code runs (core/group_testing.py's defaults): the
trial found "until 2 tests agree" in the help while the code runs a sequential probability ratio
test that needs at least 4 slow tests to name a rank."""

from __future__ import annotations

import pytest

from minicluster.cli import main
from minicluster.core import group_testing as gt


def test_isolate_help_states_the_sequential_rule_with_the_codes_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["isolate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    p = gt.Params(n_units=4)
    assert p.decision == gt.SPRT
    assert "sequential probability ratio test" in text
    assert f"at least {p.min_agree} slow tests agreeing name it bad" in text
    assert f"at least {p.clear_agree} fast ones clear it" in text
    assert f"undecided after {p.max_tests} + {p.stage2_tests} tests: UNRESOLVED" in text
    assert "until 2 tests agree" not in text
