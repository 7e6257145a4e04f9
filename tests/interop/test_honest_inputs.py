"""Every imported number is checked for unit, coverage and provenance (issue 20, kinds 1-5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.core.errors import InputError
from minicluster.interop import load
from minicluster.interop.units import convert, parse_cell

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "compare"
CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"

MD = """# bench

**Model:** `m`

#### Latency {heading}
| Metric | {column} |
|--------|-------|
| Average | {average} |
| Std Dev | {std} |
| P50 | {p50} |
| P99 | {p99} |

#### Throughput (req/s)
| Metric | Value |
|--------|-------|
| Average | 25.6 |

| Metric | Avg | Max |
|--------|-----|-----|
| GPU Memory {mem_unit} | 1 | {mem} |
"""


def _md(tmp_path: Path, **cells: str) -> Path:
    values = {
        "heading": "(ms)",
        "column": "Value",
        "average": "1,250.5",
        "std": "4.2",
        "p50": "1,200.00",
        "p99": "1,900",
        "mem_unit": "(MiB)",
        "mem": "512",
    }
    values.update(cells)
    p = tmp_path / "r.md"
    p.write_text(MD.format(**values))
    return p


def _ms(tmp_path: Path, name: str = "latency_p50_ms", **cells: str) -> float | None:
    return load(_md(tmp_path, **cells)).metrics[name].value


# --- kind 2: units --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cells, expected",
    [
        ({}, 1200.0),  # heading (ms), thousands separator
        ({"heading": "(s)", "p50": "1.2"}, 1200.0),  # heading in seconds
        ({"heading": "", "p50": "1.20 s"}, 1200.0),  # unit in the cell
        ({"heading": "(s)", "p50": "1200 ms"}, 1200.0),  # the cell beats the heading
        ({"heading": "", "column": "Value (us)", "p50": "1,200,000"}, 1200.0),  # column
        ({"heading": "(µs)", "p50": "1200000"}, 1200.0),
    ],
)
def test_latency_read_in_its_unit(tmp_path: Path, cells: dict[str, str], expected: float) -> None:
    assert _ms(tmp_path, **cells) == pytest.approx(expected)


@pytest.mark.parametrize(
    "mem_unit, mem, mib, status",
    [
        ("(MiB)", "512", 512.0, "measured"),
        ("(GiB)", "0.5", 512.0, "measured"),
        ("(KiB)", "524,288", 512.0, "measured"),
        ("(MB)", "1154.6", 1154.6e6 / 1024**2, "estimated"),  # decimal, may mean MiB
        ("(GB)", "1.1546", 1154.6e6 / 1024**2, "estimated"),
        ("(B)", "536870912", 512.0, "measured"),
    ],
)
def test_memory_converted_to_mib(
    tmp_path: Path, mem_unit: str, mem: str, mib: float, status: str
) -> None:
    mv = load(_md(tmp_path, mem_unit=mem_unit, mem=mem)).metrics["memory_peak_mib"]
    assert mv.value == pytest.approx(mib) and mv.status == status


@pytest.mark.parametrize(
    "cells, unit", [({"heading": "(min)"}, "min"), ({"mem_unit": "(pages)"}, "pages")]
)
def test_unknown_unit_is_refused_naming_it(
    tmp_path: Path, cells: dict[str, str], unit: str
) -> None:
    with pytest.raises(InputError, match=f"unknown unit '{unit}'"):
        load(_md(tmp_path, **cells))


def test_table_without_any_unit_is_not_imported(tmp_path: Path) -> None:
    r = load(_md(tmp_path, heading=""))
    assert r.measured("latency_p50_ms") is None
    assert "no unit" in (r.metrics["latency_p50_ms"].reason or "")
    assert any("no unit" in w for w in r.warnings)
    assert r.measured("throughput_samples_per_sec") is not None  # the rest still imports


@pytest.mark.parametrize("bad", ["1,2", "fast", "5."])
def test_cell_that_is_no_number_is_refused(bad: str) -> None:
    with pytest.raises(InputError, match="not a number"):
        parse_cell(bad, "t")


def test_convert_refuses_a_unit_of_the_wrong_kind() -> None:
    with pytest.raises(InputError, match="unknown unit 'MB' for a value in ms"):
        convert(1.0, "MB", "ms", "t")


# --- kind 3: placeholders -------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["N/A", "—", "-", "", "n/a", "–"])
def test_placeholder_in_a_read_row_is_not_measured(tmp_path: Path, cell: str) -> None:
    r = load(_md(tmp_path, p99=cell))
    assert r.measured("latency_p99_ms") is None
    assert f"{cell!r} cell" in (r.metrics["latency_p99_ms"].reason or "")
    assert r.metrics["latency_p50_ms"].value == 1200.0  # the rest of the report imports


def test_placeholder_in_a_row_not_read_does_not_matter(tmp_path: Path) -> None:
    assert load(_md(tmp_path, std="N/A")).warnings == []


def test_zero_median_ttft_is_not_measured(tmp_path: Path) -> None:
    data = json.loads((FIX / "vllm_ok.json").read_text())
    data["median_ttft_ms"] = 0.0
    p = tmp_path / "v.json"
    p.write_text(json.dumps(data))
    r = load(p)
    assert r.measured("ttft_ms") is None
    assert "with work done" in (r.metrics["ttft_ms"].reason or "")
    assert any("ttft_ms = 0 ms" in w for w in r.warnings)
    assert r.measured("latency_p50_ms") is not None


# --- kind 4: provenance and physics ---------------------------------------------------------


def test_simulated_power_reader_is_unavailable() -> None:
    r = load(CASES / "07-trackiq-simulated-power" / "trackiq_simulated_power.json")
    for name in (
        "power_consumption_watts",
        "energy_per_step_joules",
        "performance_per_watt",
        "temperature_celsius",
    ):
        mv = r.metrics[name]
        assert mv.value is None and mv.status == "unavailable", name
        assert "simulated in the source" in (mv.reason or "")
        assert "SimulatedPowerReader" in (mv.reason or "")
    assert r.measured("throughput_samples_per_sec") is not None  # not power: kept
    assert any("simulated" in w for w in r.warnings)


def test_real_power_reader_is_kept() -> None:
    r = load(CASES / "07-trackiq-simulated-power" / "trackiq_measured_power.json")
    assert r.metrics["power_consumption_watts"].value == 95.0
    assert not any("simulated" in w for w in r.warnings)


@pytest.mark.parametrize(
    "metric, value, why",
    [
        ("latency_p50_ms", -3.0, "negative"),
        ("throughput_samples_per_sec", -1.0, "negative"),
        ("temperature_celsius", -300.0, "below absolute zero"),
        ("power_consumption_watts", 0.0, "with work done"),
        ("energy_per_step_joules", 0.0, "with work done"),
    ],
)
def test_physically_impossible_is_not_measured(
    tmp_path: Path, metric: str, value: float, why: str
) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["metrics"][metric] = value
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    r = load(p)
    assert r.measured(metric) is None and why in (r.metrics[metric].reason or "")
    assert any(metric in w for w in r.warnings)


def test_temperature_of_zero_celsius_is_possible(tmp_path: Path) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["metrics"]["temperature_celsius"] = 0.0
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    assert load(p).metrics["temperature_celsius"].value == 0.0


# --- kind 1: coverage -----------------------------------------------------------------------


def test_vllm_requests_are_metrics_and_every_number_says_what_it_covers() -> None:
    r = load(CASES / "01-vllm-partial-failures" / "candidate.json")
    assert r.metrics["requests_completed"].value == 40
    assert r.metrics["requests_failed"].value == 60
    assert r.metrics["request_success_rate_percent"].value == 40.0
    cov = r.metrics["latency_p50_ms"].coverage
    assert cov is not None and (cov.covered, cov.total, cov.what) == (40, 100, "requests")
    assert any("60 of 100 requests failed" in w for w in r.warnings)


def test_vllm_without_failed_field_uses_num_prompts() -> None:
    r = load(FIX / "vllm_ok.json")  # an older vLLM: no 'failed'
    assert r.measured("requests_failed") is None
    assert r.metrics["request_success_rate_percent"].value == 100.0


def _with_energy_sources(tmp_path: Path, read: list[bool]) -> Path:
    """A real result with an NVML source per GPU, each counter read or lost."""
    data = json.loads((FIX / "mc11_clean_a.json").read_text())
    sources = []
    for i, ok in enumerate(read):
        energy = (
            {"value": 100.0, "unit": "J", "status": "measured"}
            if ok
            else {
                "value": None,
                "unit": "J",
                "status": "unavailable",
                "reason": "counter lost",
            }
        )
        sources.append(
            {
                "source": "nvml",
                "scope": "gpu",
                "id": f"GPU-{i}",
                "available": True,
                "readings": {"energy_j": energy},
            }
        )
    data["telemetry"] = {"nodes": [{"hostname": "n1", "sources": sources}]}
    data["metrics"]["energy_per_step_joules"] = {
        "value": 2.0 * sum(read),
        "unit": "J",
        "status": "derived",
        "method": "sum over sources",
        "reason": None,
    }
    p = tmp_path / f"energy_{sum(read)}.json"
    p.write_text(json.dumps(data))
    return p


def test_energy_says_which_sources_it_covers(tmp_path: Path) -> None:
    cov = (
        load(_with_energy_sources(tmp_path, [True, False]))
        .metrics["energy_per_step_joules"]
        .coverage
    )
    assert cov is not None and (cov.covered, cov.total) == (1, 2)
    assert cov.items == ("nvml GPU-0 on n1",)


# --- kind 5: absent is not zero -------------------------------------------------------------


def test_forced_vllm_without_completed_is_bad_input() -> None:
    with pytest.raises(InputError, match="no 'completed' field: not vLLM"):
        load(CASES / "12-vllm-latency-json-percentiles" / "latency.json", "vllm")


@pytest.mark.parametrize("fmt", ["trackiq", "minicluster", "markdown"])
def test_forced_format_that_matches_nothing_is_bad_input(fmt: str) -> None:
    with pytest.raises(InputError):
        load(FIX / "vllm_ok.json", fmt)


def test_energy_over_fewer_sources_is_not_compared(tmp_path: Path) -> None:
    from minicluster.compare import compare

    both = load(_with_energy_sources(tmp_path, [True, True]))
    one_lost = load(_with_energy_sources(tmp_path, [True, False]))  # half the energy
    row = next(
        r for r in compare([both, one_lost]).pairs[0].rows if r.metric == "energy_per_step_joules"
    )
    assert (row.a, row.b) == (4.0, 2.0)
    assert row.verdict == "not_comparable" and "1 of 2 energy sources" in row.reason


@pytest.mark.parametrize(
    "payload, simulated",
    [
        ({"collector": "SyntheticCollector"}, True),
        ({"power_profile": {"simulated": True}}, True),
        ({"data": {"source": "synthetic", "dataset": "synthetic"}}, False),  # the data, not
        ({"power_profile": {"reader": "RocmSmiReader"}}, False),  # the measurement
    ],
)
def test_what_counts_as_simulated(
    tmp_path: Path, payload: dict[str, object], simulated: bool
) -> None:
    data = json.loads((FIX / "seed001_autoperfpy.json").read_text())
    data["tool_payload"] = payload
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    r = load(p)
    assert (r.measured("latency_p50_ms") is None) == ("collector" in payload)
    assert (r.measured("temperature_celsius") is None) == simulated


def test_metric_outside_the_registry_in_a_trackiq_export_is_ignored(tmp_path: Path) -> None:
    from minicluster.interop import export

    data = json.loads(export(load(FIX / "mc11_clean_a.json"), "trackiq"))
    data["tool_payload"]["minicluster"]["metrics"]["made_up_ms"] = {
        "value": 0.0,
        "unit": "ms",
        "status": "measured",
    }
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    r = load(p)
    assert "made_up_ms" not in r.metrics
    assert any("'made_up_ms' is not in the registry" in w for w in r.warnings)
