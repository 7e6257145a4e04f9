"""A real 2-rank run on this machine: telemetry recorded per rank and merged with provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minicluster.rank import telemetry
from minicluster.result.schema import validate_result

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 64, num_layers: 2}
steps: {warmup: 2, measured: 12}
run: {nproc: 2, device: cpu}
telemetry: {sample_interval_ms: 20}
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_real_run_reports_energy_honestly_and_memory_measured(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "minicluster", "run", "-c", str(cfg), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    m = result["metrics"]

    rapl = telemetry.probe_rapl()
    if rapl.available:
        assert m["energy_per_step_joules"]["status"] == "derived"
        assert m["energy_per_step_joules"]["value"] > 0
    else:
        for name in (
            "power_consumption_watts",
            "energy_per_step_joules",
            "energy_per_sample_joules",
            "performance_per_watt",
        ):
            assert m[name]["value"] is None and m[name]["status"] == "unavailable"
            assert rapl.reason and rapl.reason in m[name]["reason"]
            assert "run on CPU" in m[name]["reason"]
    if not telemetry.probe_thermal().available:
        assert m["temperature_celsius"]["value"] is None
        assert "thermal:" in m["temperature_celsius"]["reason"]
    assert m["memory_utilization_percent"]["status"] == "derived"
    assert m["memory_peak_mib"]["status"] == "measured" and m["memory_peak_mib"]["value"] > 0

    tele = result["telemetry"]
    assert tele["sample_interval_ms"] == 20.0
    assert [n["hostname"] for n in tele["nodes"]] == [result["platform"]["nodes"][0]["hostname"]]
    assert [r["rank"] for r in tele["ranks"]] == [0, 1]
    for r in tele["ranks"]:
        pct = r["readings"]["rss_peak_percent"]
        assert pct["status"] == "derived" and 0 < pct["value"] < 100
    node_sources = {s["source"] for s in tele["nodes"][0]["sources"]}
    assert {"nvml", "rapl", "thermal"} <= node_sources  # read once, by local rank 0
    for r in (0, 1):
        summary = json.loads((out / "ranks" / f"rank_{r:05d}.summary.json").read_text())
        window = summary["telemetry"]["window"]
        assert window["measured_steps"] == 12 and window["duration_s"] > 0
        sources = [s["source"] for s in summary["telemetry"]["sources"]]
        assert ("rapl" in sources) == (r == 0)
        mem = next(s for s in summary["telemetry"]["sources"] if s["source"] == "host_memory")
        assert mem["readings"]["rss_peak_bytes"]["status"] == "measured"
