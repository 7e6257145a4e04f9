"""The JSON Schema shipped in the package is the one the typed model generates, and it accepts
every example result."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema

from minicluster.result.schema import SCHEMA_FILE, generate_schema, schema_text

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "minicluster" / "result" / SCHEMA_FILE


def test_the_shipped_schema_is_generated_from_the_model() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(generate_schema()), (
        "minicluster/result/model.py changed: run `python scripts/gen_result_schema.py`"
    )


def test_the_generated_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(generate_schema())


def test_every_field_of_the_model_is_described_in_the_schema() -> None:
    """A section's properties are its fields: a field without a type in the schema would not be
    checked when a result is read."""
    from minicluster.result.model import RankEntry, RunResult

    def names(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "_keys")]

    schema = generate_schema()
    assert list(schema["properties"]) == names(RunResult)
    rank = schema["$defs"]["rank"]
    assert list(rank["properties"]) == names(RankEntry)
    assert rank["required"] == ["rank", "status", "steps_recorded", "measured_steps"]
    assert rank["properties"]["performance_score"] == {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": 1,
    }


def test_a_section_that_may_be_null_reports_the_error_inside_it() -> None:
    from minicluster.core.errors import InputError
    from minicluster.result.schema import validate_result

    data = json.loads((REPO / "reports" / "collectives_run.result.json").read_text())
    data["collectives"]["results"][1]["busbw_gbps"] = "fast"
    try:
        validate_result(data)
    except InputError as e:
        assert "at collectives/results/1/busbw_gbps: 'fast' is not of type" in str(e)
    else:
        raise AssertionError("a string busbw was accepted")
