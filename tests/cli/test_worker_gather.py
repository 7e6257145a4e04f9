"""`minicluster worker` asks its ranks for the in-band gather only when its launcher needs it,
and then by node: each node's leader reduces its ranks' logs with the analysis side's reducer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main


@pytest.mark.parametrize(("flags", "gather"), [([], "by node"), (["--no-aggregate"], False)])
def test_the_gather_follows_what_the_launcher_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], gather: object
) -> None:
    from minicluster.analysis import node_reduce
    from minicluster.rank import worker

    seen: dict[str, Any] = {}

    def fake_run(cfg: object, out_dir: Path, run_id: str | None = None, gather: bool = True):
        seen["gather"] = gather
        return None  # not rank 0, or nothing gathered

    def fake_run_in_band(cfg: object, out_dir: Path, run_id: str | None, reducer: Any):
        seen["gather"] = "by node"
        seen["reducer"] = reducer
        return None

    monkeypatch.setattr(worker, "run", fake_run)
    monkeypatch.setattr(worker, "run_in_band", fake_run_in_band)
    monkeypatch.setenv("RANK", "1")
    assert main(["worker", "--out", str(tmp_path / "run"), *flags]) == 0
    assert seen.pop("gather") == gather
    assert seen == ({"reducer": node_reduce.reduce_logs} if gather == "by node" else {})
