"""The node-check result format (`minicluster-node-check/1`, `workload.workload_type: node_check`):
its JSON Schema, validation, and reading one from a file or a node-check directory.

Its own versioned format, not a `minicluster/1` run result: a node check has no ranks, steps or
launcher, and a run result's schema requires them. What the two share is what `fleet` reads:
`run_id`, `status`, `platform`, `workload` and `metrics` (each `{value, unit, status, method,
reason}`), so one fleet holds node checks or training runs as node checks.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.errors import InputError

FORMAT_PREFIX = "minicluster-node-check/"


@lru_cache(maxsize=1)
def node_check_json_schema() -> dict[str, Any]:
    text = (
        resources.files("minicluster.result").joinpath("schemas/node_check.schema.json").read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def is_node_check(data: Any) -> bool:
    """Whether `data` (a parsed JSON document) says it is a node-check result."""
    return isinstance(data, dict) and str(data.get("schema_version", "")).startswith(FORMAT_PREFIX)


def validate_node_check(data: Any) -> None:
    """InputError naming the first place where `data` breaks the node-check schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(node_check_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"node-check result does not match its schema at {where}: {err.message}")


def read_json(path: Path) -> tuple[Path, Any]:
    """The JSON document at `path`, or in directory `path`'s result.json, and the file read."""
    if path.is_dir():
        if rundir.result_path(path).is_dir():
            raise InputError(f"{rundir.result_path(path)} is a directory, not a result file")
        if not rundir.result_path(path).is_file():
            hint = rundir.wrong_level(path, "report")
            if hint is not None:
                raise InputError(hint)
            raise InputError(
                f"{path} is a directory without result.json (an unfinished run? try "
                f"`minicluster aggregate {path}`)"
            )
        path = rundir.result_path(path)
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a result file") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not JSON (line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not JSON (not UTF-8 text)") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def load_any(path: Path) -> Any:
    """A node-check result or a `minicluster/1` result (file or directory), validated against
    its own schema (a result of a newer major version refused)."""
    from minicluster.result import check_json

    where, data = read_json(path)
    try:
        if is_node_check(data):
            validate_node_check(data)
        else:
            check_json(data)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    return data
