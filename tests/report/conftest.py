"""Result fixtures for the report tests: one real run and two synthetic variants (see README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPORTS = Path(__file__).resolve().parents[1] / "golden" / "reports"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPORTS / f"{name}.result.json").read_text())
    return data


@pytest.fixture
def run_ok() -> dict[str, Any]:
    return load("run_ok")


@pytest.fixture
def run_straggler() -> dict[str, Any]:
    return load("run_straggler")


@pytest.fixture
def run_all_plots() -> dict[str, Any]:
    return load("run_all_plots")


@pytest.fixture
def run_failed() -> dict[str, Any]:
    return load("run_failed")


@pytest.fixture
def sweep_ok() -> dict[str, Any]:
    return load("sweep_ok")


@pytest.fixture
def collectives() -> dict[str, Any]:
    return load("collectives")


@pytest.fixture
def sweep_projected() -> dict[str, Any]:
    return load("sweep_projected")
