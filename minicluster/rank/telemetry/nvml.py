"""GPU energy, power, temperature, memory and throttle reasons from NVML (nvidia-ml-py, lazy)."""

from __future__ import annotations

import time
from typing import Any

from minicluster.rank.telemetry.reading import Reading, missing, unavailable_source

INSTALL_HINT = "nvidia-ml-py not installed (pip install 'minicluster[gpu]')"


def load_nvml() -> tuple[Any | None, str | None]:
    """The pynvml module, or None and why it cannot be imported."""
    try:
        import pynvml
    except ImportError:
        return None, INSTALL_HINT
    return pynvml, None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlMeter:
    """One GPU, identified by UUID. Energy from the total-energy counter (mJ) where the GPU has
    one (Volta+); otherwise power polled at the sampler interval and trapezoid-integrated."""

    source = "nvml"

    def __init__(self, device_index: int, interval_s: float, nvml: Any | None = None) -> None:
        self.interval_s = interval_s
        self.reason: str | None = None
        self.uuid: str | None = None
        self.name: str | None = None
        self._handle: Any = None
        self._initialized = False
        self._counter_reason: str | None = None
        self._samples: list[list[float | None]] = []
        self._mem_used_peak: int | None = None
        self._throttle_bits = 0
        self._throttle_reads = 0
        if nvml is None:
            nvml, self.reason = load_nvml()
            if nvml is None:
                return
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            self.reason = f"NVML init failed: {e}"
            return
        self._initialized = True
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(device_index)
            self.uuid = _s(nvml.nvmlDeviceGetUUID(self._handle))
            self.name = _s(nvml.nvmlDeviceGetName(self._handle))
        except nvml.NVMLError as e:
            self._handle = None
            self.reason = f"NVML cannot open GPU {device_index}: {e}"
            return
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except nvml.NVMLError as e:
            self._counter_reason = f"no energy counter: {e}"
        self._power_limit_w = self._call("nvmlDeviceGetEnforcedPowerLimit")
        self._mem_total_bytes = None
        info = self._call("nvmlDeviceGetMemoryInfo")
        if info is not None:
            self._mem_total_bytes = int(info.total)

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self._nvml, fn)(self._handle, *args)
        except self._nvml.NVMLError:
            return None

    def _energy_mj(self) -> int | None:
        if self._counter_reason is not None:
            return None
        value = self._call("nvmlDeviceGetTotalEnergyConsumption")
        return None if value is None else int(value)

    def begin(self, t_unix_s: float | None = None) -> None:
        if not self.available:
            return
        self._samples = []
        self._mem_used_peak = None
        self._throttle_bits = 0
        self._throttle_reads = 0
        self._t0 = time.time() if t_unix_s is None else t_unix_s
        self._e0_mj = self._energy_mj()
        self.sample(self._t0)

    def sample(self, t_unix_s: float) -> None:
        """Read power, temperature, memory used and throttle reasons; append, never block."""
        if not self.available:
            return
        power_mw = self._call("nvmlDeviceGetPowerUsage")
        temp_c = self._call("nvmlDeviceGetTemperature", self._nvml.NVML_TEMPERATURE_GPU)
        info = self._call("nvmlDeviceGetMemoryInfo")
        if info is not None:
            self._mem_used_peak = max(self._mem_used_peak or 0, int(info.used))
        bits = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        if bits is None and hasattr(self._nvml, "nvmlDeviceGetCurrentClocksThrottleReasons"):
            bits = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")  # drivers < 535
        if bits is not None:
            self._throttle_bits |= int(bits)
            self._throttle_reads += 1
        power_w = None if power_mw is None else power_mw / 1000.0
        self._samples.append([t_unix_s, power_w, None if temp_c is None else float(temp_c)])

    def end(self, t_unix_s: float | None = None) -> list[dict[str, Any]]:
        if not self.available:
            return [unavailable_source("nvml", "gpu", self.reason or "NVML unavailable")]
        t1 = time.time() if t_unix_s is None else t_unix_s
        e1_mj = self._energy_mj()
        self.sample(t1)
        duration_s = t1 - self._t0
        energy = self._window_energy(duration_s, e1_mj)
        if energy.value is not None and duration_s > 0:
            power = Reading(
                energy.value / duration_s,
                "W",
                "derived",
                "gpu",
                f"window energy / window duration ({energy.method})",
            )
        else:
            powers = [p for _, p, _ in self._samples if p is not None]
            power = (
                Reading(
                    sum(powers) / len(powers),
                    "W",
                    "derived",
                    "gpu",
                    "mean of polled nvmlDeviceGetPowerUsage",
                )
                if powers
                else missing("W", "gpu", energy.reason or "no power sample")
            )
        temps = [t for _, _, t in self._samples if t is not None]
        temp = (
            Reading(max(temps), "°C", "measured", "gpu", "max of polled nvmlDeviceGetTemperature")
            if temps
            else missing("°C", "gpu", "NVML returned no temperature")
        )
        readings = {
            "energy_j": energy,
            "power_mean_w": power,
            "temperature_max_c": temp,
            "memory_used_peak_bytes": self._opt(
                self._mem_used_peak, "B", "max of polled nvmlDeviceGetMemoryInfo.used"
            ),
            "memory_total_bytes": self._opt(self._mem_total_bytes, "B", "nvmlDeviceGetMemoryInfo"),
            "power_limit_w": self._opt(
                None if self._power_limit_w is None else self._power_limit_w / 1000.0,
                "W",
                "nvmlDeviceGetEnforcedPowerLimit",
            ),
        }
        return [
            {
                "source": "nvml",
                "scope": "gpu",
                "id": self.uuid,
                "name": self.name,
                "available": True,
                "reason": None,
                "readings": {k: r.to_dict() for k, r in readings.items()},
                # None (not []) when the driver never answered: "no throttling" is not known
                "throttle_reasons": self._throttle_names() if self._throttle_reads else None,
                "series": self._samples,
            }
        ]

    def _opt(self, value: float | None, unit: str, method: str) -> Reading:
        if value is None:
            return missing(unit, "gpu", "not supported by this GPU or driver", method)
        return Reading(float(value), unit, "measured", "gpu", method)

    def _window_energy(self, duration_s: float, e1_mj: int | None) -> Reading:
        if self._counter_reason is None and self._e0_mj is not None and e1_mj is not None:
            delta_mj = e1_mj - self._e0_mj
            method = "nvmlDeviceGetTotalEnergyConsumption delta over the window (mJ counter)"
            if delta_mj < 0:
                return missing(
                    "J",
                    "gpu",
                    f"energy counter went backwards ({self._e0_mj} -> "
                    f"{e1_mj} mJ): reset by a driver reload or GPU reset",
                    method,
                )
            if delta_mj == 0:
                return missing(
                    "J",
                    "gpu",
                    f"energy counter did not advance over a "
                    f"{duration_s * 1000:.0f} ms window: shorter than the counter's "
                    "update period",
                    method,
                )
            return Reading(delta_mj / 1000.0, "J", "measured", "gpu", method)
        why = self._counter_reason or "energy counter read failed"
        method = (
            f"nvmlDeviceGetPowerUsage polled every {self.interval_s * 1000:.0f} ms, "
            f"trapezoid-integrated ({why})"
        )
        points: list[tuple[float, float]] = [
            (float(t), p) for t, p, _ in self._samples if t is not None and p is not None
        ]
        if len(points) < 2 or points[-1][0] <= points[0][0]:
            return missing(
                "J",
                "gpu",
                f"{len(points)} power sample(s) in a "
                f"{duration_s * 1000:.0f} ms window: too few to integrate",
                method,
            )
        energy_j = sum(
            (t1 - t0) * (p0 + p1) / 2.0
            for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False)
        )
        return Reading(energy_j, "J", "derived", "gpu", method)

    def _throttle_names(self) -> list[str]:
        names = []
        for attr in dir(self._nvml):
            if attr.startswith("nvmlClocksEventReason") and attr not in (
                "nvmlClocksEventReasonAll",
                "nvmlClocksEventReasonNone",
            ):
                bit = getattr(self._nvml, attr)
                if isinstance(bit, int) and bit and self._throttle_bits & bit:
                    names.append(attr.removeprefix("nvmlClocksEventReason"))
        return sorted(names)

    def close(self) -> None:
        if self._initialized:
            self._initialized = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
