"""RAPL and hwmon/thermal readers on a fake sysfs tree: wrap-around, permission, missing zones."""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.rank.telemetry import probe_rapl, probe_thermal
from minicluster.rank.telemetry.rapl import RaplMeter
from minicluster.rank.telemetry.reading import read_text
from minicluster.rank.telemetry.thermal import ThermalMeter

T0 = 1_700_000_000.0
MAX_UJ = 262_143_328_850


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


def set_energy(z: Path, energy_uj: int) -> None:
    (z / "energy_uj").write_text(f"{energy_uj}\n")


def test_package_and_dram_only(tmp_path: Path) -> None:
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 5)
    dram = zone(tmp_path, "intel-rapl:0:1", "dram", 2_000_000)
    zone(tmp_path, "intel-rapl:1", "psys", 7)
    meter = RaplMeter(tmp_path)
    assert [z.scope for z in meter.zones] == ["cpu_package", "dram"]
    meter.begin(T0)
    set_energy(pkg, 31_000_000)  # +30 J
    set_energy(dram, 7_000_000)  # +5 J
    out = meter.end(T0 + 2.0)
    by_scope = {s["scope"]: s["readings"] for s in out}
    assert by_scope["cpu_package"]["energy_j"]["value"] == pytest.approx(30.0)
    assert by_scope["cpu_package"]["energy_j"]["status"] == "measured"
    assert by_scope["cpu_package"]["power_mean_w"]["value"] == pytest.approx(15.0)
    assert by_scope["dram"]["energy_j"]["value"] == pytest.approx(5.0)


def test_wrap_around_is_corrected_with_max_energy_range(tmp_path: Path) -> None:
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 1_000_000)
    meter = RaplMeter(tmp_path)
    meter.begin(T0)
    set_energy(pkg, 500_000)  # wrapped: 1 J before the top + 0.5 J after
    meter.sample(T0 + 1.0)
    set_energy(pkg, 2_500_000)  # +2 J after the wrap
    [src] = meter.end(T0 + 2.0)
    energy = src["readings"]["energy_j"]
    assert energy["value"] == pytest.approx(3.5)
    assert "1 wrap(s)" in energy["method"]
    assert [round(p[1], 6) for p in src["series"]] == [1.5, 2.0]  # W per interval


def test_permission_denied_is_unavailable_with_reason(tmp_path: Path) -> None:
    zone(tmp_path, "intel-rapl:0", "package-0", 1)

    def denied(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path)

    meter = RaplMeter(tmp_path, read=denied)
    assert not meter.available
    assert meter.reason is not None and "permission denied" in meter.reason
    assert "intel-rapl:0/energy_uj" in meter.reason
    meter.begin()
    [src] = meter.end()
    assert src["available"] is False and src["readings"] == {}


def test_read_failure_at_window_end_is_unavailable_not_zero(tmp_path: Path) -> None:
    zone(tmp_path, "intel-rapl:0", "package-0", 1)
    calls = {"n": 0}

    def flaky(path: Path) -> str:
        if path.name == "energy_uj":
            calls["n"] += 1
            if calls["n"] > 2:  # init and begin succeed
                raise OSError(5, "Input/output error")
        return read_text(path)

    meter = RaplMeter(tmp_path, read=flaky)
    meter.begin(T0)
    [src] = meter.end(T0 + 1.0)
    assert src["readings"]["energy_j"]["value"] is None
    assert "read failed at window end" in src["readings"]["energy_j"]["reason"]


def test_missing_zones(tmp_path: Path) -> None:
    assert "no RAPL zones" in (RaplMeter(tmp_path / "absent").reason or "")
    zone(tmp_path, "intel-rapl:0:0", "core", 5)
    meter = RaplMeter(tmp_path)
    assert not meter.available
    assert "no package or dram" in (meter.reason or "")
    status = probe_rapl(tmp_path)
    assert status.available is False and status.reason == meter.reason


def test_thermal_max_over_hwmon_and_zones(tmp_path: Path) -> None:
    (tmp_path / "hwmon/hwmon0").mkdir(parents=True)
    (tmp_path / "hwmon/hwmon0/temp1_input").write_text("45000\n")
    (tmp_path / "hwmon/hwmon0/temp2_input").write_text("garbage\n")  # offline sensor: skipped
    (tmp_path / "thermal/thermal_zone0").mkdir(parents=True)
    zone0 = tmp_path / "thermal/thermal_zone0/temp"
    zone0.write_text("52000\n")
    meter = ThermalMeter(tmp_path)
    assert len(meter.sensors) == 2
    meter.begin()
    zone0.write_text("61500\n")
    meter.sample(T0)
    [src] = meter.end()
    temp = src["readings"]["temperature_max_c"]
    assert temp["value"] == 61.5
    assert temp["status"] == "measured" and temp["scope"] == "host"
    assert probe_thermal(tmp_path).available


def test_thermal_missing_and_denied(tmp_path: Path) -> None:
    assert "no hwmon or thermal-zone sensors" in (ThermalMeter(tmp_path).reason or "")
    (tmp_path / "thermal/thermal_zone0").mkdir(parents=True)
    (tmp_path / "thermal/thermal_zone0/temp").write_text("40000\n")

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    meter = ThermalMeter(tmp_path, read=denied)
    assert not meter.available
    assert "permission" in (meter.reason or "")
    [src] = meter.end()
    assert src["available"] is False
