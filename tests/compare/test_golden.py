"""Golden files pin the `--json` and `--md` output of `minicluster compare` byte for byte.

Regenerate after an intended change with `MINICLUSTER_UPDATE_GOLDEN=1 pytest tests/compare`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minicluster.cli import main

TESTS = Path(__file__).resolve().parents[1]
FIX = TESTS / "fixtures" / "compare"
GOLDEN = TESTS / "golden"

CASES = {
    "compare_training_runs": ["mc11_clean_a.json", "mc11_clean_b.json", "mc11_straggler.json"],
    "compare_training_runs_v10": ["mc_run.json", "mc_run_slow.json"],
    "compare_cross_tool": ["md_002.md", "md_004.md", "seed001_autoperfpy.json", "vllm_ok.json"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(tmp_path: Path, case: str) -> None:
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    main(
        [
            "compare",
            *(str(FIX / n) for n in CASES[case]),
            "--json",
            str(out_json),
            "--md",
            str(out_md),
        ]
    )
    for produced, golden in ((out_json, GOLDEN / f"{case}.json"), (out_md, GOLDEN / f"{case}.md")):
        if os.environ.get("MINICLUSTER_UPDATE_GOLDEN"):
            golden.write_text(produced.read_text())
        assert produced.read_text() == golden.read_text(), f"{golden.name} changed"
