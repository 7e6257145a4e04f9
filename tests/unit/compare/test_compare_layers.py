"""The comparison half (importers, compare, exporters, comparison report) never imports torch.

An AST walk over the source, so a lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[3] / "minicluster"
ANALYSIS = [
    *sorted((PKG / "interop").glob("*.py")),
    *sorted((PKG / "compare").glob("*.py")),
    PKG / "report" / "comparison.py",
]
# Rank-local and launcher modules: importing them would pull torch in.
FORBIDDEN = (
    "torch",
    "minicluster.rank.worker",
    "minicluster.rank.dist",
    "minicluster.rank.comm_timing",
    "minicluster.rank.workloads",
    "minicluster.rank.telemetry",
    "minicluster.launchers",
    "ray",
)


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_torch_in_analysis_modules(path: Path) -> None:
    bad = [n for n in _imports(path) if n.split(".")[0] == "torch" or n.startswith(FORBIDDEN)]
    assert bad == [], f"{path.name} imports {bad}"
