"""The version lives in core: no layer imports the package face (which imports interop for
`minicluster.load`), and the installed distribution reports the same version."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import minicluster
from minicluster.core.version import __version__

PACKAGE = Path(minicluster.__file__).resolve().parent


def test_no_layer_imports_the_package_root() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE:
            continue  # the face itself and `python -m minicluster`
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "minicluster":
                offenders.append(f"{path.relative_to(PACKAGE)}: from minicluster import ...")
            if isinstance(node, ast.Import) and any(a.name == "minicluster" for a in node.names):
                offenders.append(f"{path.relative_to(PACKAGE)}: import minicluster")
    assert offenders == []


def test_one_version_everywhere() -> None:
    assert minicluster.__version__ == __version__
    assert importlib.metadata.version("minicluster") == __version__
