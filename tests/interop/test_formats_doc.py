"""The minimal example of each format in docs/formats.md imports as that format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minicluster.interop import load

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
BLOCKS = re.findall(r"```(json|markdown)\n(.*?)```", DOC.read_text(), re.S)


def test_every_input_format_has_an_example() -> None:
    assert len(BLOCKS) == 4
    assert len(re.findall(r"```jsonl\n(.*?)```", DOC.read_text(), re.S)) == 1


def test_sglang_example_imports(tmp_path: Path) -> None:
    (body,) = re.findall(r"```jsonl\n(.*?)```", DOC.read_text(), re.S)
    p = tmp_path / "example.jsonl"
    p.write_text(body)
    r = load(p)
    assert r.source_format == "sglang" and r.workload_type == "inference"
    assert r.measured("latency_p50_ms") is not None
    assert r.fingerprint["fields"]["request_rate"] == "inf"  # type: ignore[index]


@pytest.mark.parametrize(
    "i, fmt", [(0, "minicluster"), (1, "trackiq"), (2, "vllm"), (3, "markdown")]
)
def test_example_imports(tmp_path: Path, i: int, fmt: str) -> None:
    kind, body = BLOCKS[i]
    p = tmp_path / ("example.md" if kind == "markdown" else "example.json")
    p.write_text(body)
    r = load(p)
    assert r.source_format == fmt and r.workload_type == "inference"
    assert r.measured("latency_p50_ms") is not None
    assert r.warnings == []
