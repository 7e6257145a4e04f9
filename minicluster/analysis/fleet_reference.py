"""Each node of a fleet judged against one reference file (`fleet --reference FILE`): its figures
as % of the reference for its platform, below the floor a finding; a node of another platform is
"not judged: no reference for this platform". Never imports torch.

The judging is `analysis.reference_site`'s (the one `run`/`aggregate --reference` use): a node's
own result (one result per node) is judged as that result; a node of one multi-node result is
judged on its own figures of `reference_site.RUN_METRICS` under the run's conditions.
"""

from __future__ import annotations

from typing import Any

from minicluster.analysis import reference_site, references
from minicluster.analysis.fleet_inputs import NodeInput
from minicluster.result.model import RunResult


def used(reference: references.Reference, floor_pct: float) -> dict[str, Any]:
    """The fleet report's top-level `reference`: which file, name, kind and platform, the floor."""
    return {
        "file": reference.path,
        "name": reference.name,
        "kind": reference.kind,
        "platform": dict(reference.platform),
        "floor_pct": floor_pct,
    }


def judge_nodes(
    results: list[tuple[str, dict[str, Any]]],
    nodes: list[NodeInput],
    reference: references.Reference,
    floor_pct: float,
) -> dict[str, dict[str, Any]]:
    """Per node label, its `reference` section (`reference_site.judge_samples`'s shape). `nodes`
    are `fleet_inputs.nodes_of(results)`: one per result in order, or all of the one result."""
    per_result = len(results) > 1
    out = {}
    for i, n in enumerate(nodes):
        data = results[i][1] if per_result else results[0][1]
        if n.status != "ok":
            section = reference_site.judge_samples({}, [], reference, floor_pct)
            section.update(verdict=references.VERDICT_NOT_JUDGED, reason=f"its run {n.status}")
        elif per_result:
            section = reference_site.judge_result(data, reference, floor_pct)
        else:
            cond = reference_site.run_conditions(RunResult.from_json(dict(data)))
            # run-level figures (busbw, TFLOP/s) have no per-node value: the node's own only
            samples = [
                (m, cond, v)
                for m in reference_site.RUN_METRICS
                if (v := n.values.get(m)) is not None
            ]
            section = reference_site.judge_samples(
                _platform_of_group(n.group), samples, reference, floor_pct
            )
        out[n.label] = section
    return out


def _platform_of_group(key: tuple[str, int, str]) -> dict[str, Any]:
    """The reference platform keys of a fleet platform group (`fleet_groups.platform_key`)."""
    gpu, count, cpu = key
    if count:
        return {"gpu_model": gpu, "gpus_per_node": count}
    return {} if cpu == "unknown CPU" else {"cpu_model": cpu}
