"""`minicluster doctor` and the up-front `--require energy` check."""

from __future__ import annotations

from pathlib import Path

import pytest

from minicluster import cli
from minicluster.core import config
from minicluster.core.errors import ConfigError
from minicluster.rank import telemetry
from minicluster.rank.telemetry import SourceStatus

NO_RAPL = SourceStatus("rapl", False, "no RAPL zones under /x")
NO_NVML = SourceStatus("nvml", False, "nvidia-ml-py not installed")


@pytest.fixture
def bare_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "probe_rapl", lambda: NO_RAPL)
    monkeypatch.setattr(telemetry, "probe_nvml", lambda: NO_NVML)
    monkeypatch.setattr(
        telemetry, "probe_thermal", lambda: SourceStatus("thermal", False, "no sensors")
    )


def test_doctor_lists_every_source_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for source in ("cuda (torch)", "nvml", "rapl", "thermal", "host memory"):
        assert source in out
    assert "yes" in out  # host memory is always readable


def test_require_energy_on_a_bare_machine_fails_with_the_reasons(bare_machine: None) -> None:
    with pytest.raises(ConfigError) as e:
        telemetry.check_required(["energy"], on_gpu=False)
    msg = str(e.value)
    assert "the ranks run on CPU" in msg and "no RAPL zones under /x" in msg
    assert "minicluster doctor" in msg


def test_require_energy_passes_when_rapl_is_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "probe_rapl", lambda: SourceStatus("rapl", True))
    telemetry.check_required(["energy"], on_gpu=False)
    telemetry.check_required([], on_gpu=False)


def test_require_temperature_uses_thermal(bare_machine: None) -> None:
    with pytest.raises(ConfigError, match="temperature measurement was required"):
        telemetry.check_required(["temperature"], on_gpu=False)


def test_run_with_require_exits_2_before_any_rank_starts(
    bare_machine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  device: cpu\n")
    out = tmp_path / "out"
    assert cli.main(["run", "-c", str(cfg), "--require", "energy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicluster: error: energy measurement was required")
    assert "Traceback" not in err
    assert not (out / "ranks").exists()


def test_config_key_require_is_honoured(
    bare_machine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  device: cpu\ntelemetry:\n  require: [energy]\n")
    assert cli.main(["run", "-c", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "energy measurement was required" in capsys.readouterr().err


def test_unknown_require_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--require", "joy"])
    assert e.value.code == 2


def test_telemetry_config_section() -> None:
    cfg = config.from_dict({"telemetry": {"sample_interval_ms": 50, "require": ["energy"]}})
    assert cfg.telemetry.sample_interval_ms == 50 and cfg.telemetry.require == ["energy"]
    assert config.RunConfig().telemetry.sample_interval_ms == 100
    merged = config.require(cfg, ["temperature", "energy"])
    assert merged.telemetry.require == ["energy", "temperature"]
    for bad, msg in (
        ({"require": ["joy"]}, "allowed: energy, temperature"),
        ({"require": "energy"}, "must be a list"),
        ({"sample_interval_ms": 1}, "must be >= 10"),
    ):
        with pytest.raises(ConfigError, match=msg):
            config.from_dict({"telemetry": bad})
