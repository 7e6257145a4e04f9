"""`minicluster run`'s flags for a job across nodes: checked before any rank starts, one line and
exit 2 for each mistake; a good set reaches the launcher as one Rendezvous."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.cli import main
from minicluster.launchers import torchrun
from minicluster.launchers.base import LaunchOutcome, LaunchPlan, RecordsAt


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--node-rank", "1"], "--node-rank is for a job across nodes: give --nnodes N as well"),
        (["--rdzv-endpoint", "h:1"], "--rdzv-endpoint is for a job across nodes"),
        (["--nnodes", "2"], "--nnodes needs --rdzv-endpoint HOST:PORT"),
        (["--nnodes", "0", "--rdzv-endpoint", "h:1"], "--nnodes must be >= 1, got 0"),
        (["--nnodes", "2", "--rdzv-endpoint", "h"], "--rdzv-endpoint: expected HOST:PORT"),
        (["--nnodes", "2", "--rdzv-endpoint", "h:99999"], "port 99999 is outside 1..65535"),
        (
            ["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"],
            "--node-rank must be in 0..1, got 2",
        ),
        (["--nproc", "2", "--nproc-per-node", "3"], "--nproc 2 and --nproc-per-node 3 disagree"),
        (
            [
                "--nnodes",
                "2",
                "--rdzv-endpoint",
                "h:1",
                "--nproc-per-node",
                "2",
                "--fault",
                "crash:rank=4,step=1",
            ],
            "rank 4 is outside the world (ranks 0..3)",  # 2 nodes x 2 ranks
        ),
    ],
)
def test_bad_node_flags_are_one_line_exit_2(
    flags: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("no rank may start on bad flags")

    monkeypatch.setattr(torchrun.NodeTorchrun, "run", never)
    monkeypatch.setattr(torchrun.LocalTorchrun, "run", never)
    assert main(["run", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minicluster: error: ") and message in err[0]


def test_a_node_without_the_result_exits_0_and_says_where_it_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = []

    def node(self: torchrun.NodeTorchrun, plan: LaunchPlan) -> LaunchOutcome:
        seen.append((plan.nproc_per_node, self.rendezvous))
        (plan.out_dir / "node.json").write_text(
            '{"run_id": "job-of-rank-0", "node_rank": 1, "hostname": "b", "ranks": [4, 5, 6, 7], '
            '"ranks_ok": [4, 5, 6, 7], "result": {"hostname": "a", "path": "/runs/x/result.json"}, '
            '"written_at": "t"}'
        )
        return LaunchOutcome(RecordsAt(plan.out_dir, on_rank0_node=True))

    monkeypatch.setattr(torchrun.NodeTorchrun, "run", node)
    args = ["run", "--out", str(tmp_path / "r"), "--nnodes", "2", "--node-rank", "1"]
    args += ["--rdzv-endpoint", "a:29500", "--rdzv-id", "j", "--nproc-per-node", "4"]
    assert main(args) == 0
    assert seen == [(4, torchrun.Rendezvous(2, 1, "a:29500", "j"))]
    captured = capsys.readouterr()
    assert (
        "minicluster: run job-of-rank-0: node 1 (b): ranks 4-7 ok; rank 0 wrote the result on a "
        "at /runs/x/result.json"
    ) in captured.out
    # The id this node made up for itself (its claim's) is not the job's: it is never announced
    # (it was, in the opening line: a second id for one job).
    own = json.loads((tmp_path / "r" / ".claim").read_text())["run_id"]
    assert own != "job-of-rank-0"
    assert own not in captured.out + captured.err
    assert "the run id is rank 0's, agreed at the rendezvous" in captured.err
