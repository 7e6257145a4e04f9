"""`--fault` strings and config `faults:` entries -> checked FaultSpec records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicluster.core import config, fault_spec
from minicluster.core.errors import ConfigError
from minicluster.core.fault_spec import FaultSpec


def test_parse_each_kind() -> None:
    assert fault_spec.parse("straggler:rank=1,delay_ms=40") == FaultSpec(
        "straggler", 1, delay_ms=40
    )
    assert fault_spec.parse("straggler:rank=0,delay_ms=5,from_step=3").from_step == 3
    assert fault_spec.parse(" crash:rank=1, step=4 ") == FaultSpec("crash", 1, step=4)
    assert fault_spec.parse("hang:rank=2,step=0") == FaultSpec("hang", 2, step=0)
    assert fault_spec.parse("corrupt_grad:rank=1,step=7").kind == "corrupt_grad"
    assert str(fault_spec.parse("crash:step=4,rank=1")) == "crash:rank=1,step=4"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("meltdown:rank=1", "unknown fault kind 'meltdown'"),
        ("crash", "crash needs rank, step"),
        ("crash:rank=1", "crash needs step (e.g. crash:rank=1,step=3)"),
        ("crash:rank=1,step", "expected key=value"),
        ("crash:rank=-1,step=2", "rank must be >= 0"),
        ("crash:rank=one,step=2", "rank must be an integer"),
        ("hang:rank=1,step=2,delay_ms=5", "hang takes no key 'delay_ms'"),
    ],
)
def test_bad_specs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fault_spec.parse(text)


def test_checked_against_world_and_steps() -> None:
    faults = (FaultSpec("crash", 1, step=3),)
    fault_spec.check_against_run(faults, world_size=2, total_steps=4)
    with pytest.raises(ConfigError, match="rank 1 is outside the world"):
        fault_spec.check_against_run(faults, world_size=1, total_steps=4)
    with pytest.raises(ConfigError, match="step 3 is never reached"):
        fault_spec.check_against_run(faults, world_size=2, total_steps=3)


def test_faults_round_trip_through_the_resolved_config(tmp_path: Path) -> None:
    cfg = config.from_dict(
        {"faults": ["straggler:rank=1,delay_ms=40", {"kind": "crash", "rank": 0, "step": 2}]}
    )
    assert cfg.faults == (FaultSpec("straggler", 1, delay_ms=40), FaultSpec("crash", 0, step=2))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert config.load(path) == cfg  # what the launcher writes is what the ranks read


def test_faults_in_config_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="faults must be a list"):
        config.from_dict({"faults": "crash:rank=1,step=2"})


def test_to_dict_is_json_shaped() -> None:
    cfg = config.from_dict({"faults": ["crash:rank=1,step=2"]})
    assert cfg.to_dict()["faults"] == [
        {"kind": "crash", "rank": 1, "step": 2, "delay_ms": None, "from_step": 0}
    ]
    assert config.RunConfig().to_dict()["faults"] == []  # a list, as after a JSON round trip


def test_shipped_fault_config_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    cfg = config.load(repo / "configs" / "faults" / "node_check.yaml")
    assert [f.kind for f in cfg.faults] == ["straggler", "corrupt_grad"]
    fault_spec.check_against_run(cfg.faults, cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured)
