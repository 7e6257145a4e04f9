"""The canonical result: its typed model (`model`), its JSON Schema (`schema`), and reading it.

`read(path)` gives a `RunResult` of any 1.x result (a file, or the `result.json` of a run or sweep
directory); `RunResult.to_json()` gives the JSON back, byte for byte once written with
`core.io.atomic_write_json`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minicluster.core.errors import InputError
from minicluster.result.model import RunResult, check_version


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON of the result in `path` (a file, or a run or sweep directory), checked: a result
    of another major version or one that breaks the schema is an InputError (one line)."""
    from minicluster.result.node_check import read_json as read_document

    p, data = read_document(Path(path))
    try:
        check_json(data)
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
    assert isinstance(data, dict)  # check_json refuses anything else
    return data


def check_json(data: Any) -> None:
    """InputError (one line) unless `data` is a result of schema 1.x that the schema accepts."""
    from minicluster.result.schema import validate_result

    if not isinstance(data, dict):
        raise InputError(f"not a minicluster result (a JSON {type(data).__name__})")
    check_version(data.get("schema_version"))
    validate_result(data)


def parse(data: Any) -> RunResult:
    """Parsed JSON `data` as a RunResult, checked as `check_json` does."""
    check_json(data)
    return RunResult.from_json(data)


def read(path: str | os.PathLike[str]) -> RunResult:
    """The result in `path` (a file, or a run or sweep directory) as a RunResult; InputError
    for a file that is not a readable minicluster 1.x result."""
    return RunResult.from_json(read_json(path))
