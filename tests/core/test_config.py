from __future__ import annotations

from pathlib import Path

import pytest

from minicluster.core import config
from minicluster.core.checks import ChecksSection
from minicluster.core.config import MlpConfig, TransformerConfig
from minicluster.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load_as_typed_dataclasses() -> None:
    default = config.load(REPO / "configs" / "default.yaml")
    assert isinstance(default.workload, MlpConfig)
    assert default.run.nproc == 2
    assert default.steps.measured == 50
    lm = config.load(REPO / "configs" / "transformer.yaml")
    assert isinstance(lm.workload, TransformerConfig)
    assert lm.workload.seq_len == 64


def test_default_yaml_states_every_builtin_default() -> None:
    """configs/default.yaml is the documentation of the defaults: it lists every field of the
    training config, each with the value RunConfig() has."""
    import dataclasses

    import yaml

    path = REPO / "configs" / "default.yaml"
    assert config.load(path) == config.RunConfig()
    data = yaml.safe_load(path.read_text())
    expected = dataclasses.asdict(config.RunConfig())
    del expected["job"], expected["collectives"]  # a collectives job's (configs/collectives.yaml)
    assert set(data) == set(expected)
    for section in ("workload", "steps", "run", "checks", "telemetry", "parallel"):
        assert set(data[section]) == set(expected[section]), section
    assert [f.name for f in dataclasses.fields(config.RunSection)] == list(data["run"])
    assert [f.name for f in dataclasses.fields(ChecksSection)] == list(data["checks"])


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
    # an empty config (or comments only) is an error naming it, not the defaults run silently
    for text in ("", "# nothing set\n"):
        empty = tmp_path / "empty.yaml"
        empty.write_text(text)
        with pytest.raises(ConfigError, match=f"config {empty} is empty"):
            config.load(empty)


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


def test_shipped_collectives_config_loads() -> None:
    cfg = config.load(REPO / "configs" / "collectives.yaml")
    assert cfg.job == "collectives"
    c = cfg.collectives
    assert c.ops == ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"]
    assert (c.min_bytes, c.max_bytes, c.step_factor) == (1024, None, 2)
    assert (c.iters, c.warmup_iters, c.dtype, c.root) == (20, 5, "float32", 0)
    assert c.max_bytes_for(on_gpu=True) == 256 * 1024**2
    assert c.sizes(on_gpu=False)[0] == 1024


def test_a_training_config_dict_has_no_collectives_keys() -> None:
    """Training results pin the resolved config: adding the collectives job must not change it
    (the `checks` section, the verdict thresholds, moved out of `run` in rank format 1.4)."""
    sections = {"name", "workload", "steps", "run", "checks", "telemetry", "faults"}
    for name in ("default.yaml", "transformer.yaml", "faults/node_check.yaml"):
        data = config.load(REPO / "configs" / name).to_dict()
        assert set(data) == sections, name


def test_collectives_config_round_trips_and_keeps_only_its_sections() -> None:
    cfg = config.from_dict(
        {
            "job": "collectives",
            "collectives": {"ops": ["broadcast"], "max_bytes": "64K", "pair_bytes": "1M"},
            "faults": ["slow_link:rank=1,peer=2,delay_ms=5"],
        }
    )
    data = cfg.to_dict()
    assert set(data) == {"name", "job", "run", "collectives", "faults"}
    assert data["collectives"]["max_bytes"] == 65536  # size text resolved to bytes
    assert data["collectives"]["pair_bytes"] == 1024**2
    assert data["faults"][0]["peer"] == 2
    assert config.from_dict(data) == cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"job": "bench"}, "job is 'bench'; allowed: train, collectives"),
        ({"collectives": {}}, "a collectives section needs job: collectives"),
        ({"job": "collectives", "workload": {"name": "mlp"}}, "workload does not apply"),
        ({"job": "collectives", "steps": {}}, "steps does not apply to job: collectives"),
        (
            {"job": "collectives", "collectives": {"ops": ["reduce"]}},
            "collectives.ops has 'reduce'",
        ),
        ({"job": "collectives", "collectives": {"ops": []}}, "must be a non-empty list"),
        ({"job": "collectives", "collectives": {"ops": "all_reduce"}}, "must be a non-empty list"),
        (
            {"job": "collectives", "collectives": {"ops": ["broadcast", "broadcast"]}},
            "lists an op twice",
        ),
        ({"job": "collectives", "collectives": {"min_bytes": "1.5K"}}, "not a size: '1.5K'"),
        ({"job": "collectives", "collectives": {"min_bytes": 0}}, "min_bytes is 0; must be >= 1"),
        (
            {"job": "collectives", "collectives": {"min_bytes": "64M", "max_bytes": "1M"}},
            "max_bytes (1M) is below collectives.min_bytes (64M)",
        ),
        ({"job": "collectives", "collectives": {"step_factor": 1}}, "step_factor is 1"),
        ({"job": "collectives", "collectives": {"iters": 0}}, "collectives.iters is 0"),
        ({"job": "collectives", "collectives": {"warmup_iters": -1}}, "warmup_iters is -1"),
        ({"job": "collectives", "collectives": {"dtype": "int8"}}, "dtype is 'int8'; allowed"),
        ({"job": "collectives", "collectives": {"root": -1}}, "collectives.root is -1"),
        ({"job": "collectives", "collectives": {"sizes": "1K"}}, "unknown key collectives.sizes"),
    ],
)
def test_bad_collectives_values_name_the_field(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_dict(data)


def test_collectives_command_line_step_factor_sets_the_sizes() -> None:
    from minicluster.cli import build_parser
    from minicluster.cli.run import collectives_config

    args = build_parser().parse_args(
        ["collectives", "--sizes", "1K:64K", "--step-factor", "4", "--nproc", "2"]
    )
    cfg = collectives_config(args)
    assert cfg.collectives.sizes(False) == [1024, 4096, 16384, 65536]
    args = build_parser().parse_args(["collectives", "--step-factor", "1"])
    with pytest.raises(ConfigError, match="step_factor is 1; must be >= 2"):
        collectives_config(args)


@pytest.mark.parametrize("sizes", ["99999999999999999999999G", "1K:2048G"])
def test_collectives_sizes_above_one_tib_are_bad_input_not_a_crash(sizes: str) -> None:
    from minicluster.cli import build_parser
    from minicluster.cli.run import collectives_config

    args = build_parser().parse_args(["collectives", "--sizes", sizes])
    with pytest.raises(ConfigError, match="must be <= 1099511627776"):
        collectives_config(args)


def test_thresholds_given_under_run_still_read_into_checks() -> None:
    """Configs and rank headers from before the `checks` section had them in `run`."""
    cfg = config.from_dict(
        {"run": {"nproc": 4, "straggler_threshold_pct": 35.0, "expect_busbw_gbps": 12}}
    )
    assert cfg.run.nproc == 4
    assert cfg.checks == ChecksSection(straggler_threshold_pct=35.0, expect_busbw_gbps=12.0)
    assert "straggler_threshold_pct" not in cfg.to_dict()["run"]
    assert cfg.to_dict()["checks"]["straggler_threshold_pct"] == 35.0
    # A collectives config of then: unused there, dropped
    coll = config.from_dict({"job": "collectives", "run": {"straggler_threshold_pct": 35.0}})
    assert "checks" not in coll.to_dict()


def test_a_threshold_in_run_and_in_checks_is_refused() -> None:
    with pytest.raises(ConfigError, match="straggler_min_excess_ms is given in run and in checks"):
        config.from_dict(
            {
                "run": {"straggler_min_excess_ms": 1.0},
                "checks": {"straggler_min_excess_ms": 2.0},
            }
        )


def test_checks_override_is_checked_like_a_config() -> None:
    checks = config.override_checks(
        ChecksSection(), straggler_threshold_pct=30, slow_link_below_pct=None
    )
    assert checks == ChecksSection(straggler_threshold_pct=30.0)
    with pytest.raises(ConfigError, match="checks.straggler_min_steps_pct is 20.0; must be >= 50"):
        config.override_checks(ChecksSection(), straggler_min_steps_pct=20.0)
    with pytest.raises(ConfigError, match="unknown key checks.bogus"):
        config.from_dict({"checks": {"bogus": 1}})


def test_floats_without_a_dot_read_as_numbers(tmp_path: Path) -> None:
    """`9e-07` and `1e2` (how JSON and YAML 1.2 write them, and so how a launcher's config.json
    carries a small threshold) are floats, not strings the ranks then refuse."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run:\n  collective_timeout_s: 1e2\n  bucket_cap_mb: 5e-1\n")
    c = config.load(cfg)
    assert c.run.collective_timeout_s == 100.0 and c.run.bucket_cap_mb == 0.5
