"""Docstrings name only what exists: every dotted path into the package (`minicluster.rank.worker`,
`analysis.stragglers.find_stragglers`, `result.store`) resolves to a module and, past it, to a
name that module defines; every `name.py` is a file of this repository; and no docstring speaks
of a "coordinator" (there is none: ranks write records, aggregation merges them).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "minicluster"
LAYERS = ("core", "rank", "analysis", "result", "interop", "compare", "report", "launchers", "cli")
# `result.json`, `rank_00003.summary.json`: file names, not module paths.
FILE_SUFFIXES = {"json", "jsonl", "md", "html", "yaml", "yml", "py", "log", "csv", "parquet", "sh"}
_LAYER = "|".join(LAYERS)
DOTTED = re.compile(rf"(?<![\w./-])((?:minicluster\.)?(?:{_LAYER})(?:\.[A-Za-z_]\w*)+)(?![\w-])")
PY_FILE = re.compile(r"(?<![\w.-])([\w/]*\w\.py)\b")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


MODULES = _modules()


@cache
def _defined(path: Path) -> set[str]:
    """Top-level names of a module, and `Class.member` for its classes' methods and fields."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            for member in node.body if isinstance(node, ast.ClassDef) else []:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                    names.add(f"{node.name}.{member.target.id}")
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def resolves(dotted: str) -> bool:
    """Whether `dotted` (with or without the leading `minicluster.`) names a module of the
    package, or a name defined in one."""
    parts = dotted.split(".")
    if parts[0] != "minicluster":
        parts.insert(0, "minicluster")
    for i in range(len(parts), 1, -1):
        module = ".".join(parts[:i])
        if module in MODULES:
            rest = ".".join(parts[i:])
            return not rest or rest in _defined(MODULES[module])
    return False


def _files() -> set[str]:
    roots = ("minicluster", "scripts", "launch", "tests", "configs", ".ci")
    return {p.name for root in roots for p in (REPO / root).rglob("*") if p.is_file()}


def _docstrings() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    where = getattr(node, "name", "module")
                    found.append((f"{path.relative_to(REPO)}:{where}", doc))
    return found


def missing_names(docstrings: list[tuple[str, str]]) -> list[str]:
    files = _files()
    bad = []
    for where, doc in docstrings:
        for m in DOTTED.finditer(doc):
            dotted = m.group(1)
            if dotted.rsplit(".", 1)[-1] not in FILE_SUFFIXES and not resolves(dotted):
                bad.append(f"{where}: {dotted}")
        for m in PY_FILE.finditer(doc):
            if m.group(1).rsplit("/", 1)[-1] not in files:
                bad.append(f"{where}: {m.group(1)}")
        if re.search(r"\bcoordinator\b", doc, re.IGNORECASE):
            bad.append(f"{where}: 'coordinator'")
    return bad


def test_every_module_and_file_a_docstring_names_exists() -> None:
    assert missing_names(_docstrings()) == []


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        ("See `analysis.collectives_result` for it.", "analysis.collectives_result"),
        (
            "Uses `minicluster.rank.worker.run_everything`.",
            "minicluster.rank.worker.run_everything",
        ),
        ("Read by `collectives_result.py`.", "collectives_result.py"),
        ("The coordinator merges them.", "'coordinator'"),
    ],
)
def test_the_check_finds_a_name_that_does_not_exist(doc: str, found: str) -> None:
    assert missing_names([("x", doc)]) == [f"x: {found}"]


@pytest.mark.parametrize(
    "doc",
    [
        "Writes `result.json` and `result.partial-*.json`; see `result.store.write_result`.",
        "`minicluster.rank.worker.run`, `launchers.base.LaunchPlan.lines`, `core.rundir`.",
        "`rank_00003.summary.json`; `stragglers.py`",
    ],
)
def test_the_check_passes_names_that_exist(doc: str) -> None:
    assert missing_names([("x", doc)]) == []
