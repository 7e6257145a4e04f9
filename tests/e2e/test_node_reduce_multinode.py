"""A real two-node run (two torchrun agents on 127.0.0.1, two ranks each): its result built from
its rank journals, from its columnar files and from per-node reductions gives equal metrics,
rank and node figures and the same findings; so does the result rank 0 wrote from what the nodes
sent it in-band (each node's leader its node's reduction), whose `in_band` section says what each
node sent, in bytes, beside what its ranks' logs would have taken."""

from __future__ import annotations

import json
import pickle
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("torch")

from minicluster.analysis import node_reduce  # noqa: E402
from minicluster.analysis.aggregate import aggregate  # noqa: E402
from minicluster.analysis.records import read_run_dir  # noqa: E402
from minicluster.core import rank_format  # noqa: E402
from minicluster.result.model import RunResult  # noqa: E402
from minicluster.result.schema import validate_result  # noqa: E402

AT = "2026-01-01T00:00:00Z"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _comparable(result: dict) -> dict:
    return {
        "metrics": result["metrics"],
        "ranks": result["ranks"],
        "nodes": result.get("nodes"),
        "stragglers": result["stragglers"],
        "faults": result["faults"],
        "series": result["steps"]["series"],
        # the per-step accounting (culprit cost, time structure), from the ranks' whole columns
        **{k: result.get(k) for k in ("accounting", "culprits", "culprit_rule", "time_structure")},
        # the per-kind collectives (the in-band all-reduce had no calls, bytes or busbw and
        # counted the warm-up steps: issue 28)
        "comm": result.get("comm"),
    }


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_two_node_run_one_answer_from_journals_columns_and_node_reductions(
    python: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        "workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}\n"
        "steps: {warmup: 2, measured: 12}\n"
        "run: {nproc: 2, threads_per_rank: 1, collective_timeout_s: 30}\n"
    )
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = []
    for node in (0, 1):
        args = [python, "-m", "minicluster", "run", "-c", str(config)]
        args += ["--out", str(tmp_path / f"node{node}"), "--nnodes", "2", "--node-rank", str(node)]
        args += ["--rdzv-endpoint", endpoint, "--rdzv-id", "reduce", "--nproc-per-node", "2"]
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True, env=cli_env)
        )
        log.close()
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = "\n".join((tmp_path / f"node{n}.log").read_text()[-3000:] for n in (0, 1))
    assert codes == [0, 0], logs
    (holder,) = [
        tmp_path / f"node{n}" for n in (0, 1) if (tmp_path / f"node{n}/result.json").exists()
    ]
    in_band = json.loads((holder / "result.json").read_text())

    # Every node's rank files in one place (no shared filesystem: copied), once with and once
    # without the columnar files.
    cols, journals = tmp_path / "cols", tmp_path / "journals"
    for d in (cols, journals):
        (d / "ranks").mkdir(parents=True)
        for node in (0, 1):
            for f in (tmp_path / f"node{node}/ranks").iterdir():
                if d is cols or not f.name.endswith(".steps.arrow"):
                    shutil.copy(f, d / "ranks" / f.name)
    assert len(list((cols / "ranks").glob("*.steps.arrow"))) == 4

    from_journals = aggregate(read_run_dir(journals, workers=1), aggregated_at=AT)
    records = read_run_dir(cols, workers=1)
    from_columns = aggregate(records, aggregated_at=AT)
    groups: dict[int, list] = {}
    for r in records:
        groups.setdefault(r.header["node_rank"], []).append(r)
    assert sorted(len(g) for g in groups.values()) == [2, 2]
    reductions = [
        node_reduce.NodeReduction.from_bytes(red.to_bytes(), lean=red.lean)
        for red in map(node_reduce.reduce_node, groups.values())
    ]
    from_nodes = node_reduce.aggregate_reduced(reductions, aggregated_at=AT)

    assert len(from_journals["nodes"]) == 2
    assert _comparable(from_columns) == _comparable(from_journals)
    assert _comparable(from_nodes) == _comparable(from_journals)
    # Rank 0's own result, gathered in-band by node: the node leaders sent their reductions,
    # and it equals the result from every rank's files.
    assert _comparable(in_band) == _comparable(from_journals)
    traffic = in_band["in_band"]
    assert traffic["method"] == "node reductions", traffic
    assert traffic["reason"] is None
    assert sorted(n["node_rank"] for n in traffic["nodes"]) == [0, 1]
    assert sorted(r for n in traffic["nodes"] for r in n["ranks"]) == [0, 1, 2, 3]
    for node in traffic["nodes"]:
        assert node["sent"] == "node reduction" and node["reduce_error"] is None
        assert node["leader"] == min(node["ranks"])
        # The per-rank logs' bytes, recounted here from the files the ranks wrote: not to the
        # byte, as pickle shares the step keys a rank's rows hold as one string object in memory
        # and not in rows parsed line by line from a file (3.6% apart in one run).
        logs = [rank_format.read_log(cols, r)[0] for r in node["ranks"]]
        recount = sum(len(pickle.dumps(g)) for g in logs)
        assert abs(node["rank_log_bytes"] - recount) <= 0.1 * recount, (node, recount)
        assert 0 < node["bytes_to_rank0"]
    assert traffic["bytes_to_rank0"] == sum(n["bytes_to_rank0"] for n in traffic["nodes"])
    assert traffic["rank_log_bytes"] == sum(n["rank_log_bytes"] for n in traffic["nodes"])
    validate_result(in_band)  # the section is in the shipped schema
    typed = RunResult.from_json(in_band).in_band
    assert typed is not None and typed.to_json() == traffic
    print("in-band traffic:", json.dumps(traffic))
