"""The JSON Schema of `result.json`: generated from the typed model, shipped in the package, and
used for validation (jsonschema).

`python scripts/gen_result_schema.py` writes `schemas/result.schema.json` from the model; a test
checks the shipped file is what the model generates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.result.model import SCHEMA_VERSION, RunResult
from minicluster.result.section import SchemaBuilder, dataclass_schema

SCHEMA_FILE = "schemas/result.schema.json"
_HEAD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://minicluster.dev/schemas/result-minicluster-1.json",
    "title": "minicluster canonical result (minicluster/1.x)",
}


def _metric_value(builder: SchemaBuilder) -> dict[str, Any]:
    """A metric with its provenance: unavailable means a null value and a reason."""
    schema = dataclass_schema(builder, MetricValue, not_null=("coverage",))
    schema["allOf"] = [
        {
            "if": {"properties": {"status": {"const": "unavailable"}}},
            "then": {
                "properties": {"value": {"type": "null"}, "reason": {"type": "string"}},
                "required": ["reason"],
            },
            "else": {"properties": {"value": {"type": "number"}}},
        }
    ]
    return schema


def _coverage(builder: SchemaBuilder) -> dict[str, Any]:
    schema = dataclass_schema(builder, Coverage)
    for count in ("covered", "total"):
        schema["properties"][count]["minimum"] = 0
    return schema


def generate_schema() -> dict[str, Any]:
    """The JSON Schema of RunResult, from its fields (see `minicluster.result.section`)."""
    builder = SchemaBuilder(
        {MetricValue: ("metric_value", _metric_value), Coverage: ("coverage", _coverage)}
    )
    return builder.root(RunResult, _HEAD)


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path | None = None) -> Path:
    """Write the generated schema to the package's schema file (or `path`); returns where."""
    target = path or Path(__file__).parent / SCHEMA_FILE
    target.write_text(schema_text(generate_schema()), encoding="utf-8")
    return target


@lru_cache(maxsize=1)
def result_json_schema() -> dict[str, Any]:
    """The JSON Schema of `result.json`, shipped in the package."""
    text = resources.files("minicluster.result").joinpath(SCHEMA_FILE).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _fast_validator() -> Any:
    """jsonschema-rs's validator of the result schema (compiled once), or None without it."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(result_json_schema())


def validate_result(data: Any) -> None:
    """Raise InputError naming the first place where `data` breaks the result schema.

    jsonschema-rs decides (a 4,096-rank result in milliseconds, where jsonschema takes about a
    second); jsonschema names the place when it says no (and decides without jsonschema-rs)."""
    fast = _fast_validator()
    if fast is not None and fast.is_valid(data):
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(result_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        while err.context:  # a section that may also be null: say what is wrong inside it
            err = max(err.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"result does not match {SCHEMA_VERSION} at {where}: {err.message}")
    if fast is not None:  # the two disagree: jsonschema-rs's own first error
        err_rs = next(iter(fast.iter_errors(data)))
        where = "/".join(str(p) for p in err_rs.instance_path) or "(top level)"
        raise InputError(f"result does not match {SCHEMA_VERSION} at {where}: {err_rs.message}")
