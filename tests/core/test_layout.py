"""The `parallel:` section and `--parallel` flag: degrees resolved against the world size and the
model, every misfit a ConfigError naming the field."""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest

from minicluster.core import config
from minicluster.core.errors import ConfigError
from minicluster.core.layout import MESH_DIMS, parse_flag, resolve


def test_an_empty_section_is_ddp_over_every_rank() -> None:
    lay = config.RunConfig().parallel.layout(4)
    assert (lay.dp_replicate, lay.dp_shard, lay.tp, lay.pp, lay.ep) == (4, 1, 1, 1, 1)
    assert lay.is_ddp and not lay.fsdp and lay.name == "DDP"


def test_dp_replicate_takes_what_the_other_degrees_leave() -> None:
    lay = resolve({"dp_shard": 2, "tp": 2}, 8)
    assert lay.dp_replicate == 2 and lay.world_size == 8
    assert lay.name == "HSDP+TP" and lay.label == "dp_replicate=2,dp_shard=2,tp=2"
    assert lay.mesh == [("pp", 1), ("dp_replicate", 2), ("dp_shard", 2), ("ep", 1), ("tp", 2)]
    assert resolve({"dp_shard": 2, "tp": 2}, 4).name == "FSDP+TP"
    assert resolve({"tp": 2}, 2).name == "TP"


@pytest.mark.parametrize(
    ("degrees", "world", "says"),
    [
        ({"tp": 3}, 4, "parallel.tp (3) does not divide the world size (4)"),
        ({"dp_shard": 0}, 4, "parallel.dp_shard is 0"),
        ({"dp_replicate": 2, "tp": 4}, 4, "must multiply to the world size"),
        ({"dp_shard": 2, "tp": 4}, 4, "parallel: dp_shard=2 x tp=4 = 8 ranks does not divide"),
    ],
)
def test_a_degree_that_does_not_fit_the_world_names_its_field(
    degrees: dict[str, int], world: int, says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        resolve(degrees, world)  # type: ignore[arg-type]


def test_a_degree_that_does_not_fit_the_model_names_its_field() -> None:
    llama = config.from_dict({"workload": {"name": "llama", "n_heads": 4, "n_kv_heads": 2}})
    with pytest.raises(ConfigError, match=r"parallel\.tp \(4\) does not divide workload\.n_kv"):
        config.check_layout(config.with_parallel(llama, "tp=4"), 4)
    mlp = config.with_parallel(config.RunConfig(), "tp=2")
    with pytest.raises(ConfigError, match=r"parallel\.tp needs workload\.name: llama"):
        config.check_layout(mlp, 2)
    fsdp_mlp = config.check_layout(config.with_parallel(config.RunConfig(), "dp_shard=2"), 2)
    assert fsdp_mlp.fsdp


def test_the_flag_gives_the_whole_layout() -> None:
    assert parse_flag("dp_shard=2, tp=2") == {"dp_shard": 2, "tp": 2}
    for bad, says in (("tp", "not key=value"), ("tp=two", "must be an integer"), ("", "empty")):
        with pytest.raises(ConfigError, match=says):
            parse_flag(bad)
    cfg = config.from_dict({"workload": {"name": "llama"}, "parallel": {"tp": 2}})
    replaced = config.with_parallel(cfg, "dp_shard=2")
    assert replaced.parallel.tp is None and replaced.parallel.dp_shard == 2
    with pytest.raises(ConfigError, match=r"unknown key parallel\.dp"):
        config.with_parallel(cfg, "dp=2")


def test_a_ddp_fp32_config_dict_is_unchanged_and_a_layout_is_recorded() -> None:
    plain = config.RunConfig().to_dict()
    assert "parallel" not in plain and "precision" not in plain["run"]
    cfg = config.from_dict(
        {"workload": {"name": "llama"}, "parallel": {"dp_shard": 2}, "run": {"precision": "bf16"}}
    )
    data = cfg.to_dict()
    assert data["parallel"]["dp_shard"] == 2 and data["run"]["precision"] == "bf16"
    assert config.from_dict(data) == cfg  # what a rank header holds reads back the same


def test_llama_presets_fill_the_shape_and_the_user_keeps_the_last_word() -> None:
    cfg = config.from_dict({"workload": {"name": "llama", "preset": "llama3_8b", "n_layers": 2}})
    wl = cfg.workload
    assert isinstance(wl, config.LlamaConfig)
    assert (wl.dim, wl.n_heads, wl.n_kv_heads, wl.n_layers) == (4096, 32, 8, 2)
    assert wl.ffn_dim == 14336  # Llama 3 8B's published intermediate size
    with pytest.raises(ConfigError, match="workload.preset is 'gpt5'"):
        config.from_dict({"workload": {"name": "llama", "preset": "gpt5"}})
    with pytest.raises(ConfigError, match="n_kv_heads"):
        config.from_dict({"workload": {"name": "llama", "n_heads": 4, "n_kv_heads": 3}})


def test_expert_and_pipeline_degrees_fit_the_model() -> None:
    moe = config.from_dict({"workload": {"name": "llama", "moe_experts": 4}})
    assert config.check_layout(config.with_parallel(moe, "ep=2"), 2).name == "EP"
    dense = config.from_dict({"workload": {"name": "llama"}})
    with pytest.raises(ConfigError, match=r"parallel\.ep \(2\) needs experts"):
        config.check_layout(config.with_parallel(dense, "ep=2"), 2)
    with pytest.raises(
        ConfigError, match=r"parallel\.ep \(4\) does not divide .*moe_experts \(6\)"
    ):
        six = config.from_dict({"workload": {"name": "llama", "moe_experts": 6}})
        config.check_layout(config.with_parallel(six, "ep=4"), 4)
    assert config.check_layout(config.with_parallel(dense, "pp=2"), 2).pp_microbatches == 4
    with pytest.raises(ConfigError, match=r"parallel\.pp \(3\) does not divide workload\.n_layers"):
        six_rows = config.from_dict({"workload": {"name": "llama", "per_rank_batch": 6}})
        config.check_layout(config.with_parallel(six_rows, "pp=3"), 3)
    with pytest.raises(ConfigError, match=r"pp_microbatches \(3\) does not divide"):
        config.check_layout(config.with_parallel(dense, "pp=2,pp_microbatches=3"), 2)
    with pytest.raises(ConfigError, match="moe_top_k"):
        config.from_dict({"workload": {"name": "llama", "moe_experts": 2, "moe_top_k": 3}})


def test_slow_link_is_taken_under_dp_shard_or_tp_alone_refused_elsewhere() -> None:
    from minicluster.core.fault_spec import parse

    cfg = config.from_dict({"workload": {"name": "llama"}})
    faulted = dataclasses.replace(cfg, faults=(parse("slow_link:rank=1,delay_ms=5"),))
    for layout, world in (("dp_shard=2", 2), ("tp=2", 2), ("dp_shard=4", 4)):
        assert not config.check_layout(config.with_parallel(faulted, layout), world).is_ddp
    # a kind on several groups (2-D mesh, HSDP) or point-to-point (pp): not judged, refused
    for layout, world in (
        ("pp=2", 2),
        ("dp_shard=2,tp=2", 4),
        ("dp_replicate=2,dp_shard=2", 4),
        ("dp_replicate=2,tp=2", 4),
    ):
        with pytest.raises(ConfigError, match=f"slow_link under {layout} is not built yet"):
            config.check_layout(config.with_parallel(faulted, layout), world)
    corrupt = config.with_parallel(
        dataclasses.replace(cfg, faults=(parse("corrupt_grad:rank=1,step=2"),)), "dp_shard=2"
    )
    assert config.check_layout(corrupt, 2).fsdp  # caught per shard (replica_groups)
    ddp = dataclasses.replace(cfg, faults=(parse("slow_link:rank=1,delay_ms=5"),))
    assert config.check_layout(ddp, 2).is_ddp


@pytest.mark.parametrize(
    ("flag", "world", "groups"),
    [
        ("dp_replicate=4", 4, [[0, 1, 2, 3]]),
        ("dp_shard=4", 4, [[0], [1], [2], [3]]),
        ("dp_shard=2,tp=2", 4, [[0], [1], [2], [3]]),
        ("dp_replicate=2,dp_shard=2", 4, [[0, 2], [1, 3]]),
        ("dp_replicate=2,tp=2", 4, [[0, 2], [1, 3]]),
        ("pp=2,dp_replicate=2", 4, [[0, 1], [2, 3]]),
        ("tp=2", 2, [[0], [1]]),
    ],
)
def test_replica_groups_are_the_ranks_that_hold_the_same_shards(
    flag: str, world: int, groups: list[list[int]]
) -> None:
    """Checked against the DeviceMesh's own row-major layout: the ranks of a group differ only
    in their dp_replicate coordinate."""
    lay = resolve(parse_flag(flag), world)
    assert lay.replica_groups() == groups
    if flag == "pp=2,dp_replicate=2":
        assert lay.name == "DP+PP" and not lay.fsdp
    coords = {}
    for rank, coord in enumerate(itertools.product(*(range(n) for _, n in lay.mesh))):
        coords[rank] = dict(zip(MESH_DIMS, coord, strict=True))
    for group in groups:
        for a in group:
            for b in group:
                assert all(coords[a][d] == coords[b][d] for d in MESH_DIMS if d != "dp_replicate")
    assert sorted(r for g in groups for r in g) == list(range(world))
