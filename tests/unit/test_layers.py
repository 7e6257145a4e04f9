"""DESIGN.md section 2: the analysis half never imports torch; ray only in launchers/ray.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "minicluster"

# Modules (or packages) that must import with torch absent.
ANALYSIS = [
    "minicluster.core.errors",
    "minicluster.core.log",
    "minicluster.core.units",
    "minicluster.result.schema",
    "minicluster.core.metrics",
    "minicluster.core.config",
    "minicluster.core.collective_defs",
    "minicluster.core.fault_spec",
    "minicluster.analysis.fault_detect",
    "minicluster.analysis.aggregate",
    "minicluster.analysis.collectives",
    "minicluster.report",
    "minicluster.report.terminal",
    "minicluster.cli",
]
OPTIONAL_ANALYSIS = [
    "minicluster.analysis.scaling",
    "minicluster.compare",
    "minicluster.interop",
    "minicluster.interop",
]

_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'ray'):
            raise ImportError('blocked for the layer test: ' + name)
sys.meta_path.insert(0, Block())
import importlib, pkgutil
mods = sys.argv[1:]
for m in mods:
    try:
        mod = importlib.import_module(m)
    except ModuleNotFoundError as e:
        if e.name == m:  # an optional analysis package that does not exist yet
            continue
        raise
    if hasattr(mod, '__path__'):
        for info in pkgutil.walk_packages(mod.__path__, m + '.'):
            importlib.import_module(info.name)
assert not any(k == 'torch' or k.startswith('torch.') for k in sys.modules), 'torch imported'
print('ok')
"""


def test_analysis_half_imports_without_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKER, *ANALYSIS, *OPTIONAL_ANALYSIS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PKG.parent,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_cli_help_runs_without_torch() -> None:
    code = _BLOCKER.replace("mods = sys.argv[1:]", "mods = []") + (
        "\nfrom minicluster.cli import main\n"
        "for cmd in (['--help'], ['run', '--help'], ['sweep', '--help'], ['aggregate', '--help'], "
        "['collectives', '--help']):\n"
        "    try:\n        main(cmd)\n    except SystemExit as e:\n        assert e.code == 0\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=PKG.parent
    )
    assert out.returncode == 0, out.stderr[-2000:]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ray_is_imported_only_by_the_ray_launcher() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if "ray" in _imports(p) and p != PKG / "launchers" / "ray.py"
    ]
    assert offenders == []


def test_worker_never_imports_the_analysis_side() -> None:
    tree = ast.parse((PKG / "rank" / "worker.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    assert not any(
        m.startswith(("minicluster.analysis.aggregate", "minicluster.compare")) for m in imported
    )
