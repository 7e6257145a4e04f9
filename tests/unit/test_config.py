from __future__ import annotations

from pathlib import Path

import pytest

from minicluster import config
from minicluster.config import MlpConfig, TransformerConfig
from minicluster.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load_as_typed_dataclasses() -> None:
    default = config.load(REPO / "configs" / "default.yaml")
    assert isinstance(default.workload, MlpConfig)
    assert default.run.nproc == 2
    assert default.steps.measured == 50
    lm = config.load(REPO / "configs" / "transformer.yaml")
    assert isinstance(lm.workload, TransformerConfig)
    assert lm.workload.seq_len == 64


@pytest.mark.parametrize(
    "path", sorted(REPO.glob("configs/**/*.yaml")), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = config.load(path)
    assert cfg.name == path.stem or path.parent.name == "faults"


def test_sweep_config_keeps_the_per_rank_batch_for_weak_scaling() -> None:
    cfg = config.load(REPO / "configs" / "sweep_weak.yaml")
    assert cfg.workload.per_rank_batch == 128
    assert cfg.steps.measured == 30


def test_no_config_gives_the_defaults() -> None:
    assert config.load(None) == config.RunConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"workload": {"name": "resnet"}},
            "unknown workload.name 'resnet'; allowed: mlp, transformer",
        ),
        ({"workload": {"name": "mlp", "depth": 3}}, "unknown key workload.depth"),
        ({"bogus": 1}, "unknown key bogus"),
        ({"steps": {"measured": 0}}, "steps.measured is 0; must be >= 1"),
        ({"steps": {"warmup": -1}}, "steps.warmup is -1; must be >= 0"),
        ({"run": {"nproc": "2"}}, "run.nproc must be int, got str '2'"),
        ({"run": {"nproc": True}}, "run.nproc must be int"),
        ({"run": {"backend": "mpi"}}, "run.backend is 'mpi'; allowed: auto, gloo, nccl"),
        ({"run": {"collective_timeout_s": 0}}, "run.collective_timeout_s is 0; must be >= 1"),
        ({"workload": {"name": "transformer", "d_model": 100, "n_heads": 3}}, "divisible"),
        ([1, 2], "top level must be a mapping"),
    ],
)
def test_bad_values_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_dict(data)


def test_float_fields_accept_ints() -> None:
    cfg = config.from_dict({"run": {"collective_timeout_s": 5}})
    assert cfg.run.collective_timeout_s == 5.0
    assert isinstance(cfg.run.collective_timeout_s, float)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload: {name: mlp\nsteps: [")
    with pytest.raises(ConfigError, match="malformed YAML"):
        config.load(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert config.load(empty) == config.RunConfig()


def test_override_checks_the_new_value() -> None:
    cfg = config.override(config.RunConfig(), nproc=4, seed=None)
    assert cfg.run.nproc == 4
    with pytest.raises(ConfigError, match="run.nproc is 0"):
        config.override(cfg, nproc=0)


def test_resolved_config_round_trips_through_json(tmp_path: Path) -> None:
    import json

    cfg = config.load(REPO / "configs" / "transformer.yaml")
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert config.load(path) == cfg
