"""`isolate --reference FILE`: the note the result (and `isolate --json`) carries names the
reference by name, kind and file, whether it judged the groups or could not (no process runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _config(tmp_path: Path, platform: str, value: float) -> str | None:
    pytest.importorskip("torch")  # the machine's platform keys come from rank.header
    from minicluster.cli import build_parser
    from minicluster.cli.isolate import isolate_config

    path = tmp_path / "ref.yaml"
    path.write_text(
        "format: minicluster-reference/1\nname: site-test\nkind: site\n"
        f"platform: {platform}\nfigures:\n"
        f"  - {{metric: busbw_gbps, value: {value}, unit: GB/s, conditions: {{op: all_reduce}}}}\n"
    )
    args = build_parser().parse_args(["isolate", "--nproc", "4", "--reference", str(path)])
    return isolate_config(args).collectives.reference


def test_a_matching_reference_is_named_with_its_kind_and_file(tmp_path: Path) -> None:
    from minicluster.rank.header import cpu_model

    note = _config(tmp_path, f"{{cpu_model: {json.dumps(cpu_model())}}}", 2.0)
    assert note is not None
    assert note.startswith(f"site-test (site, {tmp_path / 'ref.yaml'}): all_reduce busbw 2 GB/s")
    assert "x 90% = floor 1.8 GB/s" in note


def test_a_reference_of_another_machine_is_named_and_judges_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = _config(tmp_path, "{gpu_model: NVIDIA B200, gpus_per_node: 8}", 2.0)
    assert note == (
        f"not judged against a reference: reference site-test (site, {tmp_path / 'ref.yaml'}) "
        "is for gpu_model=NVIDIA B200, gpus_per_node=8, not this machine"
    )
    assert "not judged against a reference" in capsys.readouterr().err
