"""Host temperature from hwmon sensors and thermal zones (`/sys/class/{hwmon,thermal}`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minicluster.rank.telemetry.reading import Reading, missing, read_text, unavailable_source

SYSFS_CLASS_ROOT = Path("/sys/class")


class ThermalMeter:
    """Max over every readable sensor (millidegrees C in sysfs), sampled during the window."""

    source = "thermal"

    def __init__(
        self, root: Path = SYSFS_CLASS_ROOT, read: Callable[[Path], str] = read_text
    ) -> None:
        self._read = read
        self.reason: str | None = None
        self._series: list[list[float | None]] = []
        candidates = sorted(root.glob("hwmon/hwmon*/temp*_input")) + sorted(
            root.glob("thermal/thermal_zone*/temp")
        )
        self.sensors: list[Path] = []
        denied = 0
        for p in candidates:
            try:
                int(read(p))
            except PermissionError:
                denied += 1
                continue
            except (OSError, ValueError):
                continue  # a sensor that is absent or offline right now
            self.sensors.append(p)
        if not self.sensors:
            if denied:
                self.reason = f"temperature sensors not readable: permission ({denied} denied)"
            elif candidates:
                self.reason = f"{len(candidates)} temperature sensor(s) under {root}, none readable"
            else:
                self.reason = f"no hwmon or thermal-zone sensors under {root}"

    @property
    def available(self) -> bool:
        return bool(self.sensors)

    def read_max_c(self) -> float | None:
        values = []
        for p in self.sensors:
            try:
                values.append(int(self._read(p)) / 1000.0)
            except (OSError, ValueError):
                continue
        return max(values) if values else None

    def begin(self) -> None:
        self._series = []
        self.sample(time.time())

    def sample(self, t_unix_s: float) -> None:
        if self.sensors:
            self._series.append([t_unix_s, None, self.read_max_c()])

    def end(self, t_unix_s: float | None = None) -> list[dict[str, Any]]:
        if not self.sensors:
            return [unavailable_source("thermal", "host", self.reason or "no sensor")]
        self.sample(time.time() if t_unix_s is None else t_unix_s)
        temps = [t for _, _, t in self._series if t is not None]
        method = f"max over {len(self.sensors)} hwmon/thermal-zone sensor(s), polled"
        temp = (
            Reading(max(temps), "°C", "measured", "host", method)
            if temps
            else missing("°C", "host", "every sensor read failed", method)
        )
        return [
            {
                "source": "thermal",
                "scope": "host",
                "id": "sysfs",
                "available": True,
                "reason": None,
                "readings": {"temperature_max_c": temp.to_dict()},
                "series": self._series,
            }
        ]

    def close(self) -> None:
        pass
