"""The layers of DESIGN section 2, enforced: import-linter contracts and no private imports.

`lint-imports` reads the contracts in pyproject.toml (layers import downward only, torch only in
`rank` and `launchers`, ray only in `launchers/ray.py`, no cycles). A second test shows the
contracts can fail: the same check on a copy of the package with `import torch` added to the
analysis layer must break. A third fails on `from x import _private` (or `module._private`)
across modules, tests and scripts included.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "minicluster"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"lint-imports not found beside {sys.executable}: install the dev extra")
    return subprocess.run(
        [str(exe), "--config", str(root / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )


@pytest.mark.timeout(150)
def test_import_contracts_hold() -> None:
    out = _lint_imports(REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.timeout(150)
def test_torch_in_the_analysis_layer_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(PKG, tmp_path / "minicluster", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    steps = tmp_path / "minicluster" / "analysis" / "steps.py"
    steps.write_text(steps.read_text() + "\nimport torch  # deliberately breaks the layers\n")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0
    assert "Only rank and launchers import torch BROKEN" in out.stdout
    assert "minicluster.analysis.steps -> torch" in out.stdout


def _module_files() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(path: Path, modules: dict[str, Path]) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    own = next((m for m, p in modules.items() if p == path), None)
    bound: set[str] = set()  # local names bound to a minicluster module
    bad = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("minicluster")
        ):
            for alias in node.names:
                if _private(alias.name) and node.module != own:
                    bad.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                if f"{node.module}.{alias.name}" in modules:
                    bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("minicluster") and alias.asname:
                    bound.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and _private(node.attr)
        ):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return bad


def test_no_module_imports_another_modules_private_names() -> None:
    modules = _module_files()
    files = [*PKG.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "scripts").glob("*.py")]
    offenders = {
        str(p.relative_to(REPO)): uses for p in files if (uses := _private_uses(p, modules))
    }
    assert offenders == {}


def test_the_private_name_check_finds_a_private_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from minicluster.cli.orchestrate import _private_thing\n"
        "from minicluster.rank import worker\n"
        "worker._hidden()\n"
    )
    uses = _private_uses(probe, _module_files())
    assert uses == [
        "line 1: from minicluster.cli.orchestrate import _private_thing",
        "line 3: worker._hidden",
    ]
