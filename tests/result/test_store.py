"""The run-directory rules: the claim (the nodes of one job across nodes share it, whoever is
first), and the write of result.json that never replaces a fuller or unreadable one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from minicluster.core.errors import InputError
from minicluster.result import store


@pytest.mark.timeout(60)
def test_nodes_of_one_job_claiming_together_both_get_the_directory(tmp_path: Path) -> None:
    """Two nodes of job slurm-1 claim one shared directory at the same moment, 300 times. The
    second must read the first's job from the claim: a claim seen before its owner was written
    made it "taken by run ?" (112 of 300 here before the claim was written whole, then linked),
    and the Slurm job died with exit 2."""
    refused: list[str] = []
    for i in range(300):
        out = tmp_path / f"d{i}"
        out.mkdir()
        start = threading.Barrier(2)

        def node(n: int, out: Path = out, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store.claim(out, f"run{n}", job="slurm-1")
            except InputError as e:
                refused.append(str(e))

        threads = [threading.Thread(target=node, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(p.name for p in out.iterdir()) == [".claim"]  # no temporary file left
    assert refused == []


def test_a_run_of_another_job_is_refused_naming_the_owner(tmp_path: Path) -> None:
    store.claim(tmp_path, "run-a", job="job-a")
    with pytest.raises(InputError, match="taken by run run-a"):
        store.claim(tmp_path, "run-b", job="job-b")
    with pytest.raises(InputError, match="taken by run run-a"):
        store.claim(tmp_path, "run-c")
