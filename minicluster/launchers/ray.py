"""The Ray driver: run a job's ranks as Ray actors in a placement group, each one rank of its own
process group running `minicluster.rank.worker.run` (the only module that imports Ray).

Started by `ray_launch.launch` as `python -m minicluster.launchers.ray --outcome-fd FD`: it reads
the request (config, output directory, run id, Ray options) from stdin and writes how the job
ended to FD as one JSON document. Its own stdout and stderr (Ray's output) go to DIR/ray.log.

Why plain actors rather than Ray Train's TorchTrainer: measured on this project's 2-core box,
TorchTrainer (Ray Train V2) starts eight actor processes (controller, state, synchronization,
placement-group cleaner, preemption watcher, dataset manager and the workers) and reached the
first measured step about 13 s later than these actors did, for the same per-rank function and
the same step times (`scripts/bench_ray_trainer.py`, BENCHMARKS.md).

How it goes: connect (or start a local instance sized to the job), check the cluster can ever
hold the workers, reserve a placement group (`pack` or `spread`), number the ranks by node
(`ray_launch.layout`: the driver's node first, ranks contiguous per node, the node rank the
node's index among the job's nodes), start one actor per bundle, let rank 0's actor pick the
rendezvous port, then run every rank and wait. Rank 0 returns every rank's records gathered
in-band. When a rank fails, the others get GRACE_S to fail on their own (they see the dead peer
in their next collective and write their summaries); any still running then are killed, as
torchrun's agent does. Ctrl-C (SIGINT from `ray_launch`) kills the actors: what they recorded
is in their files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from minicluster.core import launcher_env, rundir
from minicluster.core.rank_format import RankLog
from minicluster.launchers.ray_launch import OUTCOME_FD_ARG, Placed, RayOptions, layout
from minicluster.launchers.torchrun import is_loopback, loopback_interface, parse_endpoint

GRACE_S = 10.0  # after a rank fails, how long the others may take to fail on their own
PLACEMENT_WAIT_S = 120.0  # how long the placement group may wait for free resources
POLL_S = 0.5
CONNECT_TIMEOUT_S = 10.0  # how long the cluster's GCS address may take to accept a connection
_FORWARDED_ENV = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "NCCL_DEBUG")


class RankActor:
    """One rank of the job, in a Ray actor process of its own."""

    def free_port(self, host: str) -> int:
        """A free TCP port on `host` of this node, for the process group's rendezvous store."""
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
            return port

    def run(
        self, env: dict[str, str], config: dict[str, Any], out_dir: str, run_id: str
    ) -> dict[str, Any]:
        """`worker.run` as this rank: `{"records": ...}`, rank 0's holding every rank's records
        (the others None); when it failed, `{"error", "exit_code", "files"}`, `files` the text of
        the rank's own files (header and steps, summary), so that the driver's node holds them
        even when this node's disk is not shared."""
        try:
            logs = self._run(env, config, out_dir, run_id)
            return {"records": None if logs is None else [log.to_wire() for log in logs]}
        except BaseException as e:  # noqa: BLE001 - the driver must hear how this rank ended
            return {
                "error": f"{type(e).__name__}: {e}",
                "exit_code": int(getattr(e, "exit_code", 1) or 1),
                "files": _own_files(Path(out_dir), int(env["RANK"])),
            }

    def _run(
        self, env: dict[str, str], config: dict[str, Any], out_dir: str, run_id: str
    ) -> list[RankLog] | None:
        import ray

        os.environ.update(env)
        os.environ[launcher_env.RAY_VERSION] = ray.__version__
        os.environ[launcher_env.RAY_NODE_ID] = ray.get_runtime_context().get_node_id()
        from minicluster.core.config import from_dict
        from minicluster.rank import worker

        cfg = from_dict(config, source="the Ray launcher's config")
        return worker.run(cfg, Path(out_dir), run_id)


def _own_files(out_dir: Path, rank: int) -> dict[str, str]:
    """A rank's files, by name under `ranks/`, as text (the ones it wrote)."""
    files = {}
    for path in (rundir.rank_jsonl(out_dir, rank), rundir.rank_summary(out_dir, rank)):
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except OSError:
            pass
    return files


def drive(request: dict[str, Any], stop: threading.Event) -> dict[str, Any]:
    """Run the requested job; its outcome: `error`, `exit_codes` (non-zero ones, by rank),
    `gathered` (rank 0's in-band records), `interrupted`, or `input_error` alone."""
    import ray

    options = RayOptions(**request["options"])
    nproc = int(request["config"]["run"]["nproc"])
    try:
        _connect(ray, options, nproc)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
        where = (
            "start a local Ray instance"
            if options.address is None
            else (f"join the Ray cluster at {options.address}")
        )
        return {"input_error": f"--launcher ray: cannot {where}: {type(e).__name__}: {e}"}
    try:
        return _run_job(ray, request, options, nproc, stop)
    finally:
        ray.shutdown()  # a local instance stops; an existing cluster keeps running


def _connect(ray: Any, options: RayOptions, nproc: int) -> None:
    """`ray.init`: a local instance sized to the job, or the cluster at the address (first
    checked to answer at all: Ray itself retries an address where nothing listens for minutes)."""
    if options.address not in (None, "auto"):
        host, port = parse_endpoint(options.address)
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    if options.address is None:
        ray.init(
            address="local",
            num_cpus=options.local_cpus(nproc),
            include_dashboard=False,
            log_to_driver=False,
        )
    else:
        ray.init(address=options.address, log_to_driver=False)


def _run_job(
    ray: Any, request: dict[str, Any], options: RayOptions, nproc: int, stop: threading.Event
) -> dict[str, Any]:
    from ray.util.placement_group import placement_group, remove_placement_group

    why = _cannot_hold(ray.cluster_resources(), options, nproc)
    if why:
        return {"input_error": why}
    bundle = {"CPU": options.cpus_per_worker}
    if options.gpus_per_worker:
        bundle["GPU"] = options.gpus_per_worker
    pg = placement_group([dict(bundle)] * nproc, strategy=options.placement.upper())
    actors: dict[int, Any] = {}
    try:
        ready = pg.ready()
        deadline = time.monotonic() + PLACEMENT_WAIT_S
        while not ray.wait([ready], timeout=POLL_S)[0]:
            if stop.is_set():
                return {"interrupted": True, "exit_codes": {}}
            if time.monotonic() > deadline:
                return {
                    "error": f"the cluster did not free {nproc} x {bundle} within "
                    f"{PLACEMENT_WAIT_S:.0f} s (other jobs hold its resources)",
                    "exit_codes": {},
                }
        nodes = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        bundle_nodes = ray.util.placement_group_table(pg)["bundles_to_node_id"]
        placed = layout(
            [bundle_nodes[b] for b in range(nproc)], ray.get_runtime_context().get_node_id()
        )
        actors = _start_actors(ray, pg, placed, options)
        envs = _rank_envs(ray, placed, nodes, actors, options)
        refs = {
            p.rank: actors[p.rank].run.remote(
                envs[p.rank], request["config"], request["out_dir"], request["run_id"]
            )
            for p in placed
        }
        return _wait(ray, refs, actors, placed, nodes, stop)
    finally:
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        remove_placement_group(pg)


def _cannot_hold(total: dict[str, float], options: RayOptions, nproc: int) -> str | None:
    """Why the cluster can never hold the job's workers, or None."""
    for resource, per_worker in (
        ("CPU", options.cpus_per_worker),
        ("GPU", options.gpus_per_worker),
    ):
        need = per_worker * nproc
        if need and total.get(resource, 0) < need:
            return (
                f"--launcher ray: {nproc} workers x {per_worker:g} {resource} need {need:g} "
                f"{resource}s; the Ray cluster has {total.get(resource, 0):g}"
            )
    return None


def _start_actors(ray: Any, pg: Any, placed: list[Placed], options: RayOptions) -> dict[int, Any]:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    actor_class = ray.remote(RankActor)
    return {
        p.rank: actor_class.options(
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker,
            max_restarts=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=p.bundle
            ),
        ).remote()
        for p in placed
    }


def _rank_envs(
    ray: Any,
    placed: list[Placed],
    nodes: dict[str, dict[str, Any]],
    actors: dict[int, Any],
    options: RayOptions,
) -> dict[int, dict[str, str]]:
    """Each rank's launcher environment. One machine (every node of the job at this driver's
    address, or a loopback one: a local instance, a simulated cluster): the ranks meet on
    127.0.0.1 and gloo uses the loopback interface; else on rank 0's node address."""
    ips = {nodes[p.node_id]["NodeManagerAddress"] for p in placed}
    here = ray.util.get_node_ip_address()
    one_machine = all(is_loopback(ip) or ip == here for ip in ips)
    master = "127.0.0.1" if one_machine else nodes[placed[0].node_id]["NodeManagerAddress"]
    port = ray.get(actors[0].free_port.remote(master))
    common = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    if one_machine and "GLOO_SOCKET_IFNAME" not in common:
        lo = loopback_interface()
        if lo is not None:
            common["GLOO_SOCKET_IFNAME"] = lo
    common.update(
        {
            "WORLD_SIZE": str(len(placed)),
            "MASTER_ADDR": master,
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": str(options.threads_per_rank()),
            launcher_env.LAUNCHER: "ray",
            launcher_env.PROGRESS: "0",  # the launcher shows progress; ranks stay quiet
        }
    )
    return {
        p.rank: {
            **common,
            "RANK": str(p.rank),
            "LOCAL_RANK": str(p.local_rank),
            "LOCAL_WORLD_SIZE": str(p.local_world_size),
            "GROUP_RANK": str(p.node_rank),
        }
        for p in placed
    }


def _wait(
    ray: Any,
    refs: dict[int, Any],
    actors: dict[int, Any],
    placed: list[Placed],
    nodes: dict[str, dict[str, Any]],
    stop: threading.Event,
) -> dict[str, Any]:
    """Wait for every rank; see the module docstring for failures and Ctrl-C."""
    from ray.exceptions import RayActorError, RayTaskError

    pending = {ref: rank for rank, ref in refs.items()}
    codes: dict[int, int] = {}
    why: dict[int, str] = {}
    files: dict[int, dict[str, str]] = {}
    gathered = None
    failed_at: float | None = None
    while pending:
        if stop.is_set():
            return {"interrupted": True, "exit_codes": codes}
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
        for ref in done:
            rank = pending.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as e:
                why[rank], codes[rank] = f"{type(e).__name__}: {e}", 1
            except RayActorError:
                why[rank] = "its Ray worker process died"
            else:
                if "error" not in value:
                    gathered = value["records"] if rank == 0 else gathered
                    continue
                why[rank], codes[rank] = value["error"], value["exit_code"]
                files[rank] = value["files"]
            failed_at = failed_at or time.monotonic()
        if pending and failed_at is not None and time.monotonic() - failed_at > GRACE_S:
            for rank in pending.values():
                ray.kill(actors[rank], no_restart=True)
                codes[rank] = -int(signal.SIGKILL)
                why[rank] = f"still running {GRACE_S:.0f} s after another rank failed: killed"
            pending.clear()
    if not why:
        return {"error": None, "exit_codes": {}, "gathered": gathered}
    if stop.is_set():
        return {"interrupted": True, "exit_codes": codes, "files": files}
    where = {p.rank: _node_label(p, nodes) for p in placed}
    # A worker that died (no exit code) first: the others' errors usually follow from it.
    order = sorted(why, key=lambda rank: (rank in codes, rank))
    error = "ranks failed: " + "; ".join(f"rank {r} on {where[r]}: {why[r]}" for r in order)
    return {"error": error, "exit_codes": codes, "gathered": None, "files": files}


def _node_label(p: Placed, nodes: dict[str, dict[str, Any]]) -> str:
    node = nodes.get(p.node_id, {})
    host = node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "unknown host"
    return f"node {p.node_rank} ({host}, Ray node {p.node_id[:12]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minicluster.launchers.ray")
    parser.add_argument(OUTCOME_FD_ARG, dest="outcome_fd", type=int, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    request = json.loads(sys.stdin.read())
    # Run as `python -m`, this file is `__main__`: take the actor class from the package module,
    # so Ray ships it to the workers by name, not by value.
    driver = importlib.import_module("minicluster.launchers.ray")
    try:
        outcome = driver.drive(request, stop)
    except Exception as e:  # noqa: BLE001 - every failure must reach the launcher as an outcome
        outcome = {"error": f"the Ray driver failed: {type(e).__name__}: {e}", "exit_codes": {}}
    with os.fdopen(args.outcome_fd, "w", encoding="utf-8") as out:
        json.dump(outcome, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
