"""The canonical result format (`minicluster/1`): its JSON Schema, validation and loading."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from minicluster.core import rundir
from minicluster.core.errors import InputError

# 1.1: steps.series (the per-step cross-rank series of the run-level metrics); aborted_ranks,
# interrupted, timing_method, link. 1.2: comm_bytes and buckets in steps.series; a sweep's
# scaling.breakdown_method, points[].breakdown, projection; `nodes` is the per-node section (a
# list; before, the node count), ranks[] and the stragglers and detected faults name their node
# (`node_rank`, `hostname`), ranks[] and nodes[] carry a relative performance score. 1.3: the
# `pairwise` block (the pairwise link test); `ray` (the Ray version, under the Ray launcher),
# ranks[] and nodes[] `ray_node_id`. 1.4: `fingerprint` (the defining fields compare and history
# check, result/fingerprint.py), `imported_from.unread_fields`, imports from sglang and nccl-tests.
# Readers accept every 1.x.
SCHEMA_VERSION = "minicluster/1.4"


@lru_cache(maxsize=1)
def result_json_schema() -> dict[str, Any]:
    """The JSON Schema of `result.json`, shipped in the package."""
    text = resources.files("minicluster.result").joinpath("schemas/result.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_result(data: Any) -> None:
    """Raise InputError naming the first place where `data` breaks the result schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(result_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"result does not match {SCHEMA_VERSION} at {where}: {err.message}")


def load_result(path: Path) -> dict[str, Any]:
    """Read and validate a `result.json`, or the one in run (or sweep) directory `path`."""
    if path.is_dir():
        if not rundir.result_path(path).is_file():
            raise InputError(
                f"{path} is a directory without result.json (an unfinished run? try "
                f"`minicluster aggregate {path}`)"
            )
        path = rundir.result_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    validate_result(data)
    return data
