"""Layering: the telemetry merge and meters load without torch (DESIGN.md section 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "module",
    [
        "minicluster.analysis.energy",
        "minicluster.analysis.aggregate",
        "minicluster.rank.telemetry.session",
        "minicluster.cli",
    ],
)
def test_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "False"
