"""Fuzzed inputs: every field replaced by a value of the wrong type gives a result or InputError."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minicluster.core.errors import InputError
from minicluster.interop import load
from minicluster.interop.trackiq import to_trackiq

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"
WRONG: list[Any] = [None, "x", -1, [], {}, 1e308]


def _paths(obj: Any, prefix: tuple[Any, ...] = (), depth: int = 3) -> Iterator[tuple[Any, ...]]:
    if depth == 0:
        return
    items = (
        obj.items()
        if isinstance(obj, dict)
        else enumerate(obj[:2])
        if isinstance(obj, list)
        else []
    )
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k), depth - 1)


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(obj)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return out


def _trackiq_export() -> dict[str, Any]:
    return to_trackiq(load(FIX / "mc_run.json"))


@pytest.mark.parametrize("name", ["seed001_autoperfpy.json", "vllm_ok.json", "trackiq_export"])
def test_wrong_types_never_crash(tmp_path: Path, name: str) -> None:
    data = _trackiq_export() if name == "trackiq_export" else json.loads((FIX / name).read_text())
    target = tmp_path / "f.json"
    tried = 0
    for path in _paths(data):
        for value in WRONG:
            target.write_text(json.dumps(_set(data, path, value)))
            try:
                load(target)
            except InputError:
                pass
            tried += 1
    assert tried > 50


def test_minicluster_result_top_level_fields_fuzzed(tmp_path: Path) -> None:
    data = json.loads((FIX / "mc_run.json").read_text())
    target = tmp_path / "r.json"
    for path in _paths(data, depth=2):
        if path[0] == "config":
            continue
        for value in WRONG:
            target.write_text(json.dumps(_set(data, path, value)))
            try:
                load(target)
            except InputError:
                pass
