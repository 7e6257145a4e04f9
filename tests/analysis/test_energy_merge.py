"""Run-level energy metrics from the ranks' telemetry windows (minicluster.analysis.energy, no torch)."""

from __future__ import annotations

from typing import Any

import pytest

from minicluster.analysis import energy

WINDOW = {"t_begin_unix_s": 0.0, "t_end_unix_s": 2.0, "duration_s": 2.0, "measured_steps": 10}


def reading(
    value: float | None, unit: str, status: str = "measured", reason: str | None = None
) -> dict[str, Any]:
    return {
        "value": value,
        "unit": unit,
        "status": status,
        "scope": "gpu",
        "method": "m",
        "reason": reason,
    }


def gpu(uuid: str, energy_j: float, temp_c: float) -> dict[str, Any]:
    return {
        "source": "nvml",
        "scope": "gpu",
        "id": uuid,
        "available": True,
        "reason": None,
        "readings": {
            "energy_j": reading(energy_j, "J"),
            "temperature_max_c": reading(temp_c, "°C"),
        },
        "series": [[0.0, 50.0, temp_c], [1.0, 50.0, temp_c]],
    }


def rank(
    r: int, host: str, local: int, sources: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    header = {"rank": r, "hostname": host, "local_rank": local}
    summary = {"telemetry": {"sample_interval_ms": 100.0, "window": WINDOW, "sources": sources}}
    return header, summary


def test_shared_gpu_is_counted_once_and_sources_sum() -> None:
    rapl = {
        "source": "rapl",
        "scope": "cpu_package",
        "id": "intel-rapl:0/package-0",
        "available": True,
        "reason": None,
        "readings": {"energy_j": reading(50.0, "J")},
        "series": [],
    }
    pairs = [
        rank(0, "a", 0, [gpu("GPU-x", 100.0, 60.0), rapl]),
        rank(1, "a", 1, [gpu("GPU-x", 100.0, 60.0)]),  # same device, second rank
        rank(2, "b", 0, [gpu("GPU-y", 150.0, 75.0)]),
    ]
    sources = energy.collect_sources(pairs)
    assert sorted(s["id"] for s in sources) == ["GPU-x", "GPU-y", "intel-rapl:0/package-0"]
    m = energy.energy_metrics(sources, throughput_sps=600.0, global_batch=30)
    assert m["power_consumption_watts"].value == pytest.approx(150.0)  # 300 J / 2 s
    assert m["energy_per_step_joules"].value == pytest.approx(30.0)
    assert m["energy_per_sample_joules"].value == pytest.approx(1.0)
    assert m["performance_per_watt"].value == pytest.approx(4.0)
    assert m["temperature_celsius"].value == 75.0
    assert "GPU-y" in (m["temperature_celsius"].method or "")
    section = energy.telemetry_section(sources, m)
    assert {n["hostname"]: n["energy_j"] for n in section["nodes"]} == {"a": 150.0, "b": 150.0}
    assert [d["uuid"] for d in section["devices"]] == ["GPU-x", "GPU-y"]
    assert len(section["series"]) == 2


def test_nothing_measurable_is_unavailable_with_every_reason() -> None:
    pairs = [
        rank(
            0,
            "a",
            0,
            [
                {
                    "source": "nvml",
                    "scope": "gpu",
                    "id": None,
                    "available": False,
                    "reason": "the ranks run on CPU",
                    "readings": {},
                    "series": [],
                },
                {
                    "source": "rapl",
                    "scope": "cpu_package",
                    "id": None,
                    "available": False,
                    "reason": "RAPL not readable: permission denied",
                    "readings": {},
                    "series": [],
                },
            ],
        )
    ]
    m = energy.energy_metrics(energy.collect_sources(pairs), throughput_sps=10.0, global_batch=4)
    for name in energy.METRIC_NAMES:
        assert m[name].value is None and m[name].status == "unavailable"
    why = m["energy_per_step_joules"].reason or ""
    assert "nvml: the ranks run on CPU" in why and "permission denied" in why


def test_unavailable_gpu_energy_is_named_when_others_are_summed() -> None:
    broken = gpu("GPU-z", 0.0, 50.0)
    broken["readings"]["energy_j"] = reading(
        None, "J", "unavailable", "energy counter went backwards"
    )
    pairs = [rank(0, "a", 0, [gpu("GPU-x", 100.0, 60.0), broken])]
    m = energy.energy_metrics(energy.collect_sources(pairs), throughput_sps=None, global_batch=2)
    assert m["energy_per_step_joules"].value == pytest.approx(10.0)
    assert "not included: nvml GPU-z: energy counter went backwards" in (
        m["energy_per_step_joules"].method or ""
    )
    assert m["performance_per_watt"].value is None


def test_long_series_are_thinned_and_say_so() -> None:
    src = gpu("GPU-x", 100.0, 60.0)
    src["series"] = [[float(i), 50.0, 60.0] for i in range(12_000)]
    sources = energy.collect_sources([rank(0, "a", 0, [src])])
    section = energy.telemetry_section(sources, {})
    [series] = section["series"]
    assert series["every_nth_sample"] == 3
    assert len(series["points"]) == 4_000 and series["points"][1][0] == 3.0
