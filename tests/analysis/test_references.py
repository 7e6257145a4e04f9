"""References: loading (bad files are one clear InputError), platform matching, judging as % of
a figure measured under the same conditions, and the shipped published references."""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.analysis import references as refs
from minicluster.core.errors import InputError

H100 = {"gpu_model": "NVIDIA H100 80GB HBM3", "gpus_per_node": 8}


def _site(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(text)
    return p


SITE = """
format: minicluster-reference/1
name: site-cpu
kind: site
platform: {cpu_model: Intel Xeon Processor}
figures:
  - {metric: gemm_fp32_tflops, value: 0.2, unit: TFLOP/s, spread: 0.01, samples: 5}
  - {metric: step_time_ms, value: 20, unit: ms, direction: lower, samples: 5}
"""


def test_shipped_references_load_and_every_figure_has_source_and_date() -> None:
    shipped = refs.shipped()
    assert shipped, "minicluster/references/ ships at least one published reference"
    for ref in shipped:
        assert ref.kind == "published"
        for fig in ref.figures:
            assert fig.source and fig.date


def test_h100_node_busbw_is_judged_against_the_published_figure() -> None:
    ref = refs.find(refs.shipped(), {"gpu_model": "nvidia  h100 80gb hbm3", "gpus_per_node": 8})
    assert ref is not None and ref.name == "nvidia-h100-sxm-8gpu"
    cond = {"op": "all_reduce", "scope": "intra_node", "world_size": 8}
    ok = refs.judge(ref, "busbw_gbps", 470.0, conditions=cond)
    assert ok["verdict"] == "ok" and ok["pct_of_reference"] == pytest.approx(98.74, abs=0.01)
    slow = refs.judge(ref, "busbw_gbps", 300.0, conditions=cond)
    assert slow["verdict"] == "below_floor" and "below the 90% floor" in slow["reason"]
    assert "nccl-tests/issues/290" in slow["source"]


def test_other_conditions_or_platform_are_not_judged() -> None:
    ref = refs.find(refs.shipped(), H100)
    other_op = refs.judge(ref, "busbw_gbps", 100.0, conditions={"op": "all_gather"})
    assert other_op["verdict"] == "not_judged" and "no busbw_gbps figure" in other_op["reason"]
    assert refs.find(refs.shipped(), {"gpu_model": "NVIDIA A100-SXM4-80GB"}) is None
    none = refs.judge(None, "busbw_gbps", 100.0)
    assert none["verdict"] == "not_judged" and none["reason"] == "no reference for this platform"
    assert none["pct_of_reference"] is None


def test_lower_is_better_reads_as_percent_of_reference_pace(tmp_path: Path) -> None:
    ref = refs.load(_site(tmp_path, SITE))
    slower = refs.judge(ref, "step_time_ms", 25.0, floor_pct=90)
    assert slower["pct_of_reference"] == 80.0 and slower["verdict"] == "below_floor"
    assert refs.judge(ref, "step_time_ms", 19.0)["verdict"] == "ok"
    assert refs.judge(ref, "step_time_ms", None)["reason"] == "nothing measured to judge"


def test_site_reference_wins_over_published_and_round_trips(tmp_path: Path) -> None:
    site = refs.load(
        _site(
            tmp_path,
            SITE.replace("{cpu_model: Intel Xeon Processor}", "{gpu_model: NVIDIA H100 80GB HBM3}"),
        )
    )
    assert refs.find([*refs.shipped(), site], H100) is site
    out = tmp_path / "again.yaml"
    refs.save(site, out)
    again = refs.load(out)
    assert again.to_dict() == site.to_dict()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("format: other/1\n", "this minicluster reads minicluster-reference/1"),
        ("[1, 2", "not valid YAML"),
        (SITE.replace("kind: site", "kind: guess"), "kind must be one of published, site"),
        (SITE.replace("value: 0.2", "value: -1"), "value must be a positive number"),
        (SITE.replace("cpu_model:", "gpu:"), "platform keys gpu unknown"),
        (SITE.replace("kind: site", "kind: published"), "needs its source and date"),
        (SITE + "extra: 1\n", "unknown keys extra"),
    ],
)
def test_bad_reference_files_are_one_clear_input_error(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(InputError, match=words):
        refs.load(_site(tmp_path, text))
    with pytest.raises(InputError, match="no such reference file"):
        refs.load(tmp_path / "absent.yaml")
