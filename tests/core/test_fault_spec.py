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
    assert fault_spec.parse("kill:rank=1,step=5,signal=15") == FaultSpec(
        "kill", 1, step=5, signal=15
    )
    assert fault_spec.parse("kill:rank=1,step=5") == FaultSpec("kill", 1, step=5)
    assert str(fault_spec.parse("kill:signal=9,rank=1,step=5")) == "kill:rank=1,step=5,signal=9"


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
        ("kill:rank=1,step=2,signal=2", "signal must be one of 9, 15 (SIGKILL, SIGTERM), got 2"),
        ("crash:rank=1,step=2,signal=9", "crash takes no key 'signal'"),
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
        {
            "faults": [
                "straggler:rank=1,delay_ms=40",
                {"kind": "crash", "rank": 0, "step": 2},
                "kill:rank=1,step=3,signal=15",
            ]
        }
    )
    assert cfg.faults == (
        FaultSpec("straggler", 1, delay_ms=40),
        FaultSpec("crash", 0, step=2),
        FaultSpec("kill", 1, step=3, signal=15),
    )
    assert "signal" not in cfg.to_dict()["faults"][0]  # only where given
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert config.load(path) == cfg  # what the launcher writes is what the ranks read


def test_faults_in_config_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="faults must be a list"):
        config.from_dict({"faults": "crash:rank=1,step=2"})


def test_to_dict_is_json_shaped() -> None:
    cfg = config.from_dict({"faults": ["crash:rank=1,step=2"]})
    assert cfg.to_dict()["faults"] == [
        {"kind": "crash", "rank": 1, "step": 2, "delay_ms": None, "from_step": 0, "peer": None}
    ]
    assert config.RunConfig().to_dict()["faults"] == []  # a list, as after a JSON round trip


def test_shipped_fault_config_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    cfg = config.load(repo / "configs" / "faults" / "node_check.yaml")
    assert [f.kind for f in cfg.faults] == ["straggler", "corrupt_grad"]
    fault_spec.check_against_run(cfg.faults, cfg.run.nproc, cfg.steps.warmup + cfg.steps.measured)


def test_a_slow_link_with_a_peer_is_the_link_between_two_ranks() -> None:
    f = fault_spec.parse("slow_link:rank=1,peer=2,delay_ms=30")
    assert f == FaultSpec("slow_link", 1, delay_ms=30, peer=2)
    assert f.endpoints == (1, 2)
    assert str(f) == "slow_link:rank=1,peer=2,delay_ms=30"
    assert fault_spec.parse(str(f)) == f  # the text round-trips
    plain = fault_spec.parse("slow_link:rank=1,delay_ms=30")
    assert plain.peer is None and plain.endpoints == (1,)
    assert str(plain) == "slow_link:rank=1,delay_ms=30"
    with pytest.raises(ConfigError, match="straggler takes no key 'peer'"):
        fault_spec.parse("straggler:rank=1,peer=2,delay_ms=5")


def test_a_peer_is_checked_against_the_world() -> None:
    with pytest.raises(ConfigError, match="peer 4 is outside the world"):
        fault_spec.check_against_benchmark(
            (fault_spec.parse("slow_link:rank=1,peer=4,delay_ms=5"),), 4, pairwise=True
        )
    with pytest.raises(ConfigError, match="peer is the rank itself"):
        fault_spec.check_against_run(
            (fault_spec.parse("slow_link:rank=1,peer=1,delay_ms=5"),), 2, total_steps=4
        )


def test_training_refuses_a_link_its_all_reduce_never_uses_alone() -> None:
    """Over 3+ ranks DDP's all-reduce spans every rank: a per-link delay could not act, and a
    run that injects nothing must not look like one that found nothing."""
    link = (fault_spec.parse("slow_link:rank=0,peer=1,delay_ms=5"),)
    fault_spec.check_against_run(link, world_size=2, total_steps=4)  # the world is the link
    with pytest.raises(ConfigError, match="spans all 4 ranks"):
        fault_spec.check_against_run(link, world_size=4, total_steps=4)


@pytest.mark.parametrize(
    ("text", "pairwise", "message"),
    [
        ("straggler:rank=1,delay_ms=5", True, "takes only slow_link faults"),
        ("crash:rank=1,step=0", True, "takes only slow_link faults"),
        ("slow_link:rank=1,delay_ms=5,from_step=2", True, "leave out from_step"),
        ("slow_link:rank=1,peer=2,delay_ms=5", False, "only the pairwise link test"),
    ],
)
def test_a_collectives_job_takes_only_a_slow_link(text: str, pairwise: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fault_spec.check_against_benchmark((fault_spec.parse(text),), 4, pairwise=pairwise)


def test_two_faults_of_one_kind_on_one_rank_or_link_are_refused() -> None:
    """The rank would add their delays up while the result lists two faults to judge against."""
    twice = (
        fault_spec.parse("straggler:rank=1,delay_ms=40"),
        fault_spec.parse("straggler:rank=1,delay_ms=80"),
    )
    with pytest.raises(ConfigError, match=r"rank 1 already has a straggler fault \(straggler:"):
        fault_spec.check_against_run(twice, 2, 10)
    crashes = (fault_spec.parse("crash:rank=0,step=3"), fault_spec.parse("crash:rank=0,step=5"))
    with pytest.raises(ConfigError, match=r"give one crash per rank$"):
        fault_spec.check_against_run(crashes, 2, 10)
    link = (
        fault_spec.parse("slow_link:rank=1,peer=2,delay_ms=5"),
        fault_spec.parse("slow_link:rank=2,peer=1,delay_ms=9"),  # the same link, turned round
    )
    with pytest.raises(ConfigError, match=r"the link 2-1 already has a slow_link fault"):
        fault_spec.check_against_benchmark(link, 3, True)
    # different kinds on one rank, other ranks, other links, a NIC beside a link: allowed
    fault_spec.check_against_run(
        (twice[0], fault_spec.parse("pause:rank=1,delay_ms=5"), crashes[0]), 2, 10
    )
    fault_spec.check_against_run(
        (twice[0], fault_spec.parse("straggler:rank=0,delay_ms=80")), 2, 10
    )
    fault_spec.check_against_benchmark(
        (
            link[0],
            fault_spec.parse("slow_link:rank=1,peer=3,delay_ms=5"),
            fault_spec.parse("slow_link:rank=1,delay_ms=5"),
        ),
        4,
        True,
    )
