"""`minicluster.load`: any result as pandas DataFrames; `convert --to csv` writes through it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import minicluster
from minicluster.cli import main

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
FIX = TESTS / "fixtures" / "compare"


def _run_dir(tmp_path: Path, fixture: str = "mc11_clean_a.json", name: str = "run") -> Path:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(FIX / fixture, d / "result.json")
    return d


def test_run_directory_as_frames(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    data = json.loads((run / "result.json").read_text())
    r = minicluster.load(run)
    assert r.raw == data
    m = r.metrics.set_index("metric")
    assert m.loc["latency_p50_ms", "value"] == data["metrics"]["latency_p50_ms"]["value"]
    assert m.loc["latency_p50_ms", "n_samples"] == 50
    assert m.loc["tokens_per_sec", "status"] == "unavailable"
    assert list(r.ranks["rank"]) == [0, 1] and "step_time_ms.p50" in r.ranks.columns
    assert list(r.nodes["n_ranks"]) == [2]
    assert r.scaling.empty


def test_steps_long_format_holds_every_rank_and_step(tmp_path: Path) -> None:
    r = minicluster.load(_run_dir(tmp_path))
    emb = r.raw["steps"]["embedded"]
    series = r.raw["steps"]["series"]
    s = r.steps
    assert list(s.columns) == [
        "rank",
        "step",
        "warmup",
        "step_time_ms",
        "compute_ms",
        "comm_ms",
        "wait_ms",
        "transfer_ms",
        "exposed_comm_ms",
    ]
    assert len(s) == sum(len(v["step"]) for v in emb.values()) == 110
    assert int(s["warmup"].sum()) == 10
    rank1 = s[s["rank"] == 1].set_index("step")
    assert list(rank1["step_time_ms"]) == emb["1"]["step_time_ms"]
    measured = s[~s["warmup"]]
    # transfer is the step's min over ranks of comm, wait each rank's comm minus it
    by_step = measured.groupby("step")
    assert list(by_step["comm_ms"].min()) == pytest.approx(series["allreduce_transfer_ms"])
    assert (
        measured["wait_ms"] - (measured["comm_ms"] - measured["transfer_ms"])
    ).abs().max() < 1e-3
    assert list(by_step["step_time_ms"].max()) == series["step_time_ms"]
    assert s[s["warmup"]]["transfer_ms"].isna().all()


def test_steps_from_rank_files_equal_the_embedded_ones(tmp_path: Path) -> None:
    golden = TESTS / "golden"
    run = tmp_path / "run"
    shutil.copytree(golden / "run_2ranks", run)
    data = json.loads((golden / "run_2ranks.result.json").read_text())
    embedded = minicluster.load(golden / "run_2ranks.result.json").steps
    data["steps"]["embedded"] = None
    (run / "result.json").write_text(json.dumps(data))
    from_files = minicluster.load(run).steps
    import pandas as pd

    assert from_files.shape == embedded.shape
    pd.testing.assert_frame_equal(from_files, embedded, check_dtype=False, atol=1e-4)


def test_sweep_scaling_frame() -> None:
    r = minicluster.load(ROOT / "reports" / "sweep_run.result.json")
    assert list(r.scaling["world_size"]) == [1, 2, 4]
    assert r.scaling["efficiency_pct"].iloc[0] == 100.0


def test_inference_file_as_frames() -> None:
    r = minicluster.load(
        TESTS / "fixtures" / "cases" / "01-vllm-partial-failures" / "candidate.json"
    )
    assert r.raw["workload"]["workload_type"] == "inference"
    assert r.raw["imported_from"]["format"] == "vllm"
    m = r.metrics.set_index("metric")
    assert m.loc["latency_p50_ms", "coverage"] == "40 of 100 requests"
    assert r.steps.empty and r.ranks.empty


def test_convert_csv_writes_the_metrics_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.csv"
    assert main(["convert", str(FIX / "md_004.md"), "--to", "csv", "-o", str(out)]) == 0
    frame = minicluster.load(FIX / "md_004.md").metrics
    assert out.read_text() == frame.to_csv(index=False, lineterminator="\n")
    assert main(["convert", str(FIX / "md_004.md"), "--to", "csv", "-o", "-"]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_load_gives_the_typed_result_and_its_json() -> None:
    """`.result` is the typed model, `.raw` its JSON; the metrics frame counts each metric's
    samples in `n_samples` (the README's name for the column: tests/test_readme.py)."""
    from minicluster.interop.frames import METRIC_COLUMNS
    from minicluster.result.model import RunResult

    frames = minicluster.load(FIX / "mc11_clean_a.json")
    assert isinstance(frames.result, RunResult)
    assert frames.raw == json.loads((FIX / "mc11_clean_a.json").read_text())
    assert list(frames.metrics.columns) == list(METRIC_COLUMNS)
    assert (frames.metrics["n_samples"] > 0).any()


def test_command_line_does_not_import_pandas() -> None:
    code = (
        "import sys; import minicluster, minicluster.cli, minicluster.compare, "
        "minicluster.interop, minicluster.report.comparison; print('pandas' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"


def test_readme_notebook_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- notebook-example -->\s*```python\n(.*?)```", readme, re.S)
    assert block is not None, "README lost its notebook example"
    runs = tmp_path / "runs"
    runs.mkdir()
    _run_dir(runs, "mc11_clean_a.json", "a")
    _run_dir(runs, "mc11_straggler.json", "b")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    assert (tmp_path / "step_time_per_rank.png").stat().st_size > 1000
