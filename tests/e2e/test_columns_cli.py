"""A real run's ranks leave their steps as columns beside their journals, and the result is the
same from either: the columns are a copy a reader may take, never a second truth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyarrow")

from minicluster.analysis.aggregate import UNREAD_STEP_FIELDS, aggregate  # noqa: E402
from minicluster.analysis.records import read_run_dir  # noqa: E402
from minicluster.core import rank_columns  # noqa: E402

T = "2026-01-01T00:00:00+00:00"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_straggler_run_gives_the_same_result_from_columns_and_journals(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "workload: {name: mlp, per_rank_batch: 32, input_dim: 128, hidden_dim: 256, num_layers: 2}\n"
        "steps: {warmup: 2, measured: 8}\n"
        "run: {nproc: 2, threads_per_rank: 1}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [python, "-m", "minicluster", "run", "-c", str(cfg), "--out", str(out)]
        + ["--fault", "straggler:rank=1,delay_ms=40"],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=110,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # a straggler is a finding
    for rank in (0, 1):
        got = rank_columns.read_columns(out, rank)
        assert got is not None, f"rank {rank} left no complete columnar file"
        assert got[1].num_rows == 10 and got[0]["last_step"] == 9
    journals = tmp_path / "journals"
    shutil.copytree(out, journals)
    for path in (journals / "ranks").glob(f"*{rank_columns.COLUMNS_SUFFIX}"):
        path.unlink()
    from_columns = aggregate(read_run_dir(out, drop=UNREAD_STEP_FIELDS), aggregated_at=T)
    from_journals = aggregate(read_run_dir(journals, drop=UNREAD_STEP_FIELDS), aggregated_at=T)
    assert from_columns == from_journals
    assert [d["rank"] for d in from_columns["faults"]["detected"] if d["kind"] == "straggler"] == [
        1
    ]
