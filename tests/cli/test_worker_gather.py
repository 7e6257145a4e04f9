"""`minicluster worker` asks its ranks for the in-band gather only when its launcher needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minicluster.cli import main


@pytest.mark.parametrize(("flags", "gather"), [([], True), (["--no-aggregate"], False)])
def test_the_gather_follows_what_the_launcher_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], gather: bool
) -> None:
    from minicluster.rank import worker

    seen: dict[str, Any] = {}

    def fake_run(cfg: object, out_dir: Path, run_id: str | None = None, gather: bool = True):
        seen["gather"] = gather
        return None  # not rank 0, or nothing gathered

    monkeypatch.setattr(worker, "run", fake_run)
    monkeypatch.setenv("RANK", "1")
    assert main(["worker", "--out", str(tmp_path / "run"), *flags]) == 0
    assert seen == {"gather": gather}
