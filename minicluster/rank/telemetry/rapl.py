"""CPU package and DRAM energy from Linux RAPL (`/sys/class/powercap/intel-rapl:*`), per node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minicluster.rank.telemetry.reading import (
    Reading,
    Scope,
    missing,
    read_text,
    unavailable_source,
)

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass
class _Zone:
    path: Path
    name: str
    scope: Scope
    max_range_uj: int
    last_uj: int = 0
    acc_uj: int = 0
    wraps: int = 0


def _scope_of(zone_name: str) -> Scope | None:
    """Package and DRAM zones only: core/uncore are inside the package, psys overlaps both."""
    if zone_name.startswith("package"):
        return "cpu_package"
    if zone_name == "dram":
        return "dram"
    return None


class RaplMeter:
    """Reads `energy_uj` at the window edges and at every sample, so a counter wrap-around
    (detected by a decrease, corrected with `max_energy_range_uj`) is caught between two reads."""

    source = "rapl"

    def __init__(self, root: Path = POWERCAP_ROOT, read: Callable[[Path], str] = read_text) -> None:
        self.root = root
        self._read = read
        self.reason: str | None = None
        self.zones: list[_Zone] = []
        self._series: list[list[float | None]] = []
        paths = sorted(root.glob("intel-rapl:*")) if root.is_dir() else []
        if not paths:
            self.reason = f"no RAPL zones under {root} (no powercap driver, or a VM/container)"
            return
        try:
            for p in paths:
                name = read(p / "name").strip()
                scope = _scope_of(name)
                if scope is not None:
                    max_uj = int(read(p / "max_energy_range_uj"))
                    zone = _Zone(p, f"{p.name}/{name}", scope, max_uj)
                    zone.last_uj = int(read(p / "energy_uj"))
                    self.zones.append(zone)
        except PermissionError as e:
            self.zones = []
            self.reason = (
                f"RAPL not readable: permission denied on {e.filename or root} "
                "(energy_uj is root-only since Linux 5.10; run as root or add a "
                "udev rule granting read access)"
            )
            return
        except (OSError, ValueError) as e:
            self.zones = []
            self.reason = f"RAPL not readable: {e}"
            return
        if not self.zones:
            self.reason = f"no package or dram RAPL zone under {root}"

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def begin(self, t_unix_s: float | None = None) -> None:
        self._series = []
        self._t0 = self._t_last = time.time() if t_unix_s is None else t_unix_s
        for z in self.zones:
            z.acc_uj = 0
            z.wraps = 0
        try:
            self._read_all()
        except OSError as e:
            self.zones = []
            self.reason = f"RAPL not readable at window start: {e}"

    def _read_all(self) -> int:
        """Accumulate each zone's delta since the last read; returns total delta in uJ."""
        total = 0
        for z in self.zones:
            now = int(self._read(z.path / "energy_uj"))
            delta = now - z.last_uj
            if delta < 0:
                delta += z.max_range_uj
                z.wraps += 1
            z.last_uj = now
            z.acc_uj += delta
            total += delta
        return total

    def sample(self, t_unix_s: float) -> None:
        if not self.zones:
            return
        try:
            self._sample(t_unix_s)
        except OSError:
            return  # the next read accumulates from the last good one

    def _sample(self, t_unix_s: float) -> None:
        delta_uj = self._read_all()
        dt = t_unix_s - self._t_last
        self._t_last = t_unix_s
        if dt > 0:
            self._series.append([t_unix_s, delta_uj / 1e6 / dt, None])

    def end(self, t_unix_s: float | None = None) -> list[dict[str, Any]]:
        if not self.zones:
            return [unavailable_source("rapl", "cpu_package", self.reason or "RAPL unavailable")]
        t1 = time.time() if t_unix_s is None else t_unix_s
        error: str | None = None
        try:
            self._sample(t1)
        except OSError as e:
            error = f"RAPL read failed at window end: {e}"
        duration_s = t1 - self._t0
        out: list[dict[str, Any]] = []
        for z in self.zones:
            method = (
                "RAPL energy_uj delta, wrap-around corrected with max_energy_range_uj, "
                f"{z.wraps} wrap(s)"
            )
            if error is not None:
                energy = missing("J", z.scope, error, method)
            else:
                energy = Reading(z.acc_uj / 1e6, "J", "measured", z.scope, method)
            power = (
                Reading(
                    energy.value / duration_s,
                    "W",
                    "derived",
                    z.scope,
                    "window energy / window duration",
                )
                if energy.value is not None and duration_s > 0
                else missing("W", z.scope, energy.reason or "empty window")
            )
            out.append(
                {
                    "source": "rapl",
                    "scope": z.scope,
                    "id": z.name,
                    "available": True,
                    "reason": None,
                    "readings": {"energy_j": energy.to_dict(), "power_mean_w": power.to_dict()},
                    "series": [],
                }
            )
        if out:
            out[0]["series"] = self._series  # node total (package + dram) power per interval
        return out

    def close(self) -> None:
        pass
