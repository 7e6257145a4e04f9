"""scripts/setup.sh installs only when something changed: an install with extras X satisfies a
later request for a subset of X (`run.sh` asks for train after `test.sh` installed train,dev,ray);
a new extra or a changed pyproject.toml / constraints.txt installs again, keeping the extras
already there. Run against a fake venv whose python logs each pip install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >>"$(dirname "$0")/../pip.log"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "constraints.txt").write_text("torch==2.13.0\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def _setup(checkout: Path, extras: str) -> list[str]:
    """Run setup.sh EXTRAS; the extras of each pip install it made."""
    log = checkout / ".venv" / "pip.log"
    before = log.read_text().splitlines() if log.exists() else []
    subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh"), extras],
        check=True,
        capture_output=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "MINICLUSTER_VENV": str(checkout / ".venv")},
    )
    after = log.read_text().splitlines() if log.exists() else []
    new = after[len(before) :]
    # every call ends by compiling the package's bytecode (a no-op where it is up to date)
    assert new and new[-1].startswith("-m compileall -q ") and new[-1].endswith("/minicluster")
    return [line.rsplit("[", 1)[1].rstrip("]") for line in new if line.startswith("-m pip ")]


def test_a_subset_of_the_installed_extras_installs_nothing(checkout: Path) -> None:
    assert _setup(checkout, "train,dev,ray") == ["dev,ray,train"]  # scripts/test.sh
    assert _setup(checkout, "train") == []  # scripts/run.sh afterwards: re-installed before
    assert _setup(checkout, "train,dev,ray") == []  # and test.sh again: re-installed before
    assert _setup(checkout, "ray,train") == []


def test_a_new_extra_installs_with_the_ones_already_there(checkout: Path) -> None:
    assert _setup(checkout, "train") == ["train"]
    assert _setup(checkout, "train,dev,ray") == ["dev,ray,train"]
    assert _setup(checkout, "train,parquet") == ["dev,parquet,ray,train"]
    assert _setup(checkout, "dev") == []


def test_a_changed_pyproject_or_constraints_installs_again(checkout: Path) -> None:
    assert _setup(checkout, "train,dev") == ["dev,train"]
    (checkout / "constraints.txt").write_text("torch==2.13.0\nrich==14.0.0\n")
    assert _setup(checkout, "train") == ["dev,train"]  # the installed extras stay current
    assert _setup(checkout, "train") == []
    (checkout / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert _setup(checkout, "dev") == ["dev,train"]


def test_a_stamp_of_the_earlier_format_is_read(checkout: Path) -> None:
    """`EXTRAS CRC SIZE` as the setup of before wrote it: the same install is not repeated."""
    sums = subprocess.run(
        ["bash", "-c", f"cat {checkout}/pyproject.toml {checkout}/constraints.txt | cksum"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (checkout / ".venv" / ".minicluster-installed").write_text(f"train,dev,ray {sums}\n")
    assert _setup(checkout, "train") == []
