"""A sweep's result is its own type (the headline run's result, the scaling block, the sweep's
id, status and efficiency), not a patched copy of one run; built again from the recorded runs of
a real sweep it gives the bytes that sweep wrote (and, since 1.4, its fingerprint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.analysis import projection, scaling, sweep
from minicluster.analysis.sweep import PlannedRun, RunOutcome
from minicluster.cli.sweep_projection import link_model
from minicluster.result import fingerprint
from minicluster.result.model import RunResult
from minicluster.result.section import same_json

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RECORDED = GOLDEN / "sweep_tiny"


def test_the_recorded_sweep_is_built_again_byte_for_byte() -> None:
    plan = json.loads((RECORDED / "sweep.json").read_text())
    wrote = json.loads((GOLDEN / "reports" / "sweep_projected.result.json").read_text())
    outcomes = [
        RunOutcome(PlannedRun(1, n), json.loads((RECORDED / f"n{n}-r1.result.json").read_text()))
        for n in plan["world_sizes"]
    ]
    block = scaling.build_scaling(
        outcomes,
        plan["mode"],
        plan["world_sizes"],
        plan["repeats"],
        plan["per_rank_batch"],
        plan["global_batch"],
        plan["threads_per_rank"],
        plan["warnings"],
    )
    probe = RunResult.from_json(json.loads((RECORDED / "allreduce-n2.result.json").read_text()))
    model, why = link_model(plan["projection"], probe)
    block["projection"] = projection.project(block, plan["projection"]["world_sizes"], model, why)
    made = sweep.sweep_result(
        outcomes, block, plan["sweep_id"], plan["created_at"], wrote["aggregated_at"], 3
    )
    assert made is not None
    built = made.to_json()
    # Since 1.4 a result carries its fingerprint (what it ran: here what the headline ran), at
    # its end; everything else is what the sweep of 1.2 wrote, key order included.
    assert built.pop("fingerprint") == fingerprint.of_result(wrote)
    # Since the projection carries its fit error and what it was fitted on (on the block and
    # every point), those keys are new; the recorded error (31% at 2 ranks) projects still.
    proj = built["scaling"]["projection"]
    assert proj.pop("fit_error_pct") == pytest.approx(30.978, abs=1e-3)
    fit_on = proj.pop("fit_on")
    assert "error checked at world size 1, 2" in fit_on
    for p in proj["points"]:
        assert p.pop("fit_error_pct") == pytest.approx(30.978, abs=1e-3)
        assert p.pop("fit_on") == fit_on
    # Since 1.5 the per-step jitter wait is its own part: what 1.2 called straggler wait is the
    # sum of the two, so folding them back gives what 1.2 wrote.
    for point, recorded in zip(built["scaling"]["points"], wrote["scaling"]["points"], strict=True):
        b, r = point["breakdown"], recorded["breakdown"]
        c = b["components_ms"]
        c["straggler_wait"] += c.pop("jitter_wait")
        assert c["straggler_wait"] == pytest.approx(r["components_ms"]["straggler_wait"])
        c["straggler_wait"] = r["components_ms"]["straggler_wait"]
        if b.get("loss"):
            for key in ("parts_ms", "parts_pts"):
                parts = b["loss"][key]
                parts["straggler_wait"] += parts.pop("jitter_wait")
                assert parts["straggler_wait"] == pytest.approx(r["loss"][key]["straggler_wait"])
                parts["straggler_wait"] = r["loss"][key]["straggler_wait"]
    assert "jitter wait = compute_ms" in built["scaling"]["breakdown_method"]
    built["scaling"]["breakdown_method"] = wrote["scaling"]["breakdown_method"]
    # Since the headline comes from the largest size with an ok run (not one with any result),
    # its `why` says so; this sweep had no failed run, so the same run is picked.
    assert "largest world size with an ok run" in built["scaling"]["headline_run"]["why"]
    built["scaling"]["headline_run"]["why"] = wrote["scaling"]["headline_run"]["why"]
    assert same_json(built, wrote)
    # the headline run's own result is untouched: the sweep's fields live in the SweepResult
    head = json.loads((RECORDED / "n4-r1.result.json").read_text())
    assert same_json(made.headline.to_json(), head)
    assert made.scaling.headline_run is not None and made.scaling.headline_run.dir == "n4-r1"
    assert made.to_result().steps_section is not None
    assert made.to_result().steps_section.rank_files.startswith("n4-r1/")  # type: ignore[union-attr]
