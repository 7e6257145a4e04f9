"""NvmlMeter against a mocked pynvml (autospec): counter, power integration, resets, init errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import SimpleNamespace
from unittest import mock

import pytest

pynvml = pytest.importorskip("pynvml")

from minicluster.rank.telemetry.nvml import INSTALL_HINT, NvmlMeter  # noqa: E402

FUNCS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)
T0 = 1_700_000_000.0


@pytest.fixture
def nvml() -> Iterator[SimpleNamespace]:
    """Every NVML call the meter makes, patched with autospec on the real module."""
    patches = [mock.patch.object(pynvml, name, autospec=True) for name in FUNCS]
    mocks = {name: p.start() for name, p in zip(FUNCS, patches, strict=True)}
    ns = SimpleNamespace(**mocks)
    ns.nvmlDeviceGetUUID.return_value = "GPU-1234"
    ns.nvmlDeviceGetName.return_value = "Fake H100"
    ns.nvmlDeviceGetEnforcedPowerLimit.return_value = 700_000
    ns.nvmlDeviceGetMemoryInfo.return_value = SimpleNamespace(total=80 * 2**30, used=10 * 2**30)
    ns.nvmlDeviceGetPowerUsage.return_value = 300_000
    ns.nvmlDeviceGetTemperature.return_value = 55
    ns.nvmlDeviceGetCurrentClocksEventReasons.return_value = 0
    yield ns
    for p in patches:
        p.stop()


def not_supported() -> Exception:
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_energy_counter_path_reports_measured_joules(nvml: SimpleNamespace) -> None:
    # probe at init, begin, end (mJ)
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [1_000_000, 1_000_000, 1_250_000]
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    meter.sample(T0 + 1.0)
    [src] = meter.end(T0 + 2.0)
    energy = src["readings"]["energy_j"]
    assert src["id"] == "GPU-1234"
    assert energy["status"] == "measured"
    assert energy["value"] == pytest.approx(250.0)
    assert "TotalEnergyConsumption" in energy["method"]
    assert src["readings"]["power_mean_w"]["value"] == pytest.approx(125.0)
    assert src["readings"]["power_limit_w"]["value"] == pytest.approx(700.0)
    assert src["readings"]["memory_used_peak_bytes"]["value"] == 10 * 2**30


def test_power_integration_path_is_derived_trapezoid(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = not_supported()
    nvml.nvmlDeviceGetPowerUsage.side_effect = [100_000, 200_000, 200_000]  # mW
    meter = NvmlMeter(0, 0.5)
    meter.begin(T0)
    meter.sample(T0 + 1.0)
    [src] = meter.end(T0 + 2.0)
    energy = src["readings"]["energy_j"]
    # trapezoid: 1 s at (100+200)/2 W + 1 s at 200 W = 350 J
    assert energy["status"] == "derived"
    assert energy["value"] == pytest.approx(350.0)
    assert "polled every 500 ms" in energy["method"]
    assert "Not Supported" in energy["method"]
    assert src["readings"]["power_mean_w"]["value"] == pytest.approx(175.0)


def test_counter_reset_gives_unavailable_not_a_negative_or_zero(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [5_000_000, 5_000_000, 1_000]
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    [src] = meter.end(T0 + 1.0)
    energy = src["readings"]["energy_j"]
    assert energy["value"] is None
    assert energy["status"] == "unavailable"
    assert "went backwards" in energy["reason"]
    # power still has honest samples: their mean, labelled as such
    power = src["readings"]["power_mean_w"]
    assert power["value"] == pytest.approx(300.0)
    assert "mean of polled" in power["method"]


def test_window_shorter_than_counter_resolution_is_unavailable(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [42_000, 42_000, 42_000]
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    [src] = meter.end(T0 + 0.004)
    energy = src["readings"]["energy_j"]
    assert energy["value"] is None
    assert "did not advance over a 4 ms window" in energy["reason"]


def test_power_path_with_too_few_samples_is_unavailable(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = not_supported()
    nvml.nvmlDeviceGetPowerUsage.side_effect = [150_000, not_supported()]
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    [src] = meter.end(T0 + 0.05)
    assert src["readings"]["energy_j"]["value"] is None
    assert "too few to integrate" in src["readings"]["energy_j"]["reason"]


def test_nvml_error_on_init_is_unavailable_with_reason(nvml: SimpleNamespace) -> None:
    nvml.nvmlInit.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    meter = NvmlMeter(0, 0.1)
    assert not meter.available
    meter.begin()
    meter.sample(T0)
    [src] = meter.end()
    assert src["available"] is False
    assert src["reason"] == "NVML init failed: Driver Not Loaded"
    assert src["readings"] == {}
    meter.close()
    nvml.nvmlShutdown.assert_not_called()  # never initialized, so never shut down


def test_missing_library_names_the_extra() -> None:
    with mock.patch.dict(sys.modules, {"pynvml": None}):
        meter = NvmlMeter(0, 0.1)
    assert not meter.available
    [src] = meter.end()
    assert src["reason"] == INSTALL_HINT


def test_temperature_max_and_throttle_reasons(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, 0, 10_000]
    nvml.nvmlDeviceGetTemperature.side_effect = [60, 71, 65]
    nvml.nvmlDeviceGetCurrentClocksEventReasons.side_effect = [
        0,
        pynvml.nvmlClocksEventReasonSwPowerCap,
        pynvml.nvmlClocksEventReasonGpuIdle,
    ]
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    meter.sample(T0 + 0.5)
    [src] = meter.end(T0 + 1.0)
    assert src["readings"]["temperature_max_c"]["value"] == 71.0
    assert src["throttle_reasons"] == ["GpuIdle", "SwPowerCap"]
    assert [p[2] for p in src["series"]] == [60.0, 71.0, 65.0]
    meter.close()
    nvml.nvmlShutdown.assert_called_once()


def test_throttle_reasons_unknown_when_the_driver_never_answers(nvml: SimpleNamespace) -> None:
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = [0, 0, 10_000]
    nvml.nvmlDeviceGetCurrentClocksEventReasons.side_effect = pynvml.NVMLError(
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    )
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons.side_effect = not_supported()
    meter = NvmlMeter(0, 0.1)
    meter.begin(T0)
    [src] = meter.end(T0 + 1.0)
    assert src["throttle_reasons"] is None
