"""A custom model's factory loaded, built and checked on one rank (CPU), and every fault of the
user's code named in one line: the file, the function and the exception."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from minicluster.core.config import CustomConfig  # noqa: E402
from minicluster.rank import workloads  # noqa: E402
from minicluster.rank.workloads.custom import (  # noqa: E402
    BuildContext,
    UserCodeError,
    load_factory,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_model.py"
CPU = torch.device("cpu")


def _write(tmp_path: Path, body: str, name: str = "user_model.py") -> str:
    path = tmp_path / name
    path.write_text("import torch\n" + body)
    return str(path)


def _build(factory: str, rank: int = 0, **fields: object) -> workloads.Workload:
    cfg = CustomConfig(factory=factory, **fields)  # type: ignore[arg-type]
    return workloads.build(cfg, seed=3, device=CPU, rank=rank, world_size=2)


def test_the_example_builds_trains_and_differs_by_rank() -> None:
    wl = _build(f"{EXAMPLE}:build", options={"width": 32, "depth": 1}, per_rank_batch=4)
    assert wl.name == "custom" and wl.samples_per_rank == 4 and wl.tokens_per_rank is None
    linear = 32 * 64 + 64 * 32 + 32  # the Linear weights of one block and the head
    assert wl.flops_per_sample == 6 * linear
    assert wl.flops_method is not None and "custom_model.py:build" in wl.flops_method
    x0, y0 = wl.make_batch(0, 0)
    assert x0.shape == (4, 32) and y0.shape == (4,)
    loss = wl.loss_fn(wl.model(x0), y0)
    loss.backward()
    assert loss.ndim == 0
    other = _build(f"{EXAMPLE}:build", rank=1, options={"width": 32, "depth": 1}, per_rank_batch=4)
    assert not torch.equal(other.make_batch(0, 1)[0], x0)  # each rank its own data
    same = [
        torch.equal(a, b)
        for a, b in zip(wl.model.parameters(), other.model.parameters(), strict=True)
    ]
    assert all(same)  # seeded: the same initial weights on every rank


def test_an_object_with_attributes_is_accepted(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        "class Built:\n"
        "    def __init__(self, ctx):\n"
        "        self.model = torch.nn.Linear(3, 1)\n"
        "        self.samples_per_batch = 2\n"
        "        self.tokens_per_batch = 10\n"
        "        self.ctx = ctx\n"
        "    def make_batch(self, step):\n"
        "        return torch.ones(2, 3) * self.ctx.rank, torch.zeros(2, 1)\n"
        "    def loss_fn(self, out, y):\n"
        "        return ((out - y) ** 2).mean()\n"
        "def build(ctx):\n"
        "    return Built(ctx)\n",
    )
    wl = _build(f"{f}:build", rank=1)
    assert wl.tokens_per_rank == 10 and wl.flops_per_sample is None
    assert float(wl.make_batch(5, 1)[0].sum()) == 6.0


def test_the_context_carries_what_the_contract_says(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        "SEEN = []\n"
        "def build(ctx):\n"
        "    SEEN.append(ctx)\n"
        "    return {'model': torch.nn.Linear(1, 1), 'make_batch': lambda s: (1, 2),\n"
        "            'loss_fn': lambda o, t: torch.zeros(()), 'samples_per_batch': 5}\n",
    )
    _build(f"{f}:build", rank=1, per_rank_batch=5, options={"k": 1})
    seen = load_factory(f"{f}:build").__globals__["SEEN"]
    ctx: BuildContext = seen[-1]
    assert (ctx.rank, ctx.world_size, ctx.seed, ctx.per_rank_batch) == (1, 2, 3, 5)
    assert ctx.device == CPU and ctx.options == {"k": 1} and ctx.mesh is None
    assert (ctx.dp_rank, ctx.dp_size) == (1, 2)  # under DDP: the rank and the world size


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("import not_a_module_xyz\n", "importing .*user_model.py raised ModuleNotFoundError"),
        ("def build(ctx:\n", "importing .*user_model.py raised SyntaxError"),
        ("def make(ctx):\n    pass\n", "user_model.py has no function 'build'"),
        ("build = 3\n", "'build' in .*user_model.py is a int, not a function"),
        ("def build(ctx):\n    return 1 / 0\n", r"build\(ctx\) raised ZeroDivisionError"),
        ("def build(ctx):\n    return None\n", r"build\(ctx\) returned None"),
        (
            "def build(ctx):\n    return {'model': torch.nn.Linear(1, 1)}\n",
            "lacks make_batch, loss_fn, samples_per_batch",
        ),
        (
            "def build(ctx):\n    return {'model': 1, 'make_batch': len, 'loss_fn': len, "
            "'samples_per_batch': 2}\n",
            "model that must be a torch.nn.Module, got int",
        ),
        (
            "def build(ctx):\n    return {'model': torch.nn.Linear(1, 1), 'make_batch': len, "
            "'loss_fn': len, 'samples_per_batch': 2.5}\n",
            "samples_per_batch that must be a positive int, got 2.5",
        ),
        (
            "def build(ctx):\n    return {'model': torch.nn.Linear(1, 1), 'make_batch': 7, "
            "'loss_fn': len, 'samples_per_batch': 2}\n",
            "make_batch that must be callable",
        ),
        (
            "def build(ctx):\n    return {'model': torch.nn.Linear(1, 1), 'make_batch': len, "
            "'loss_fn': len, 'samples_per_batch': 2, 'flops_per_sample': -1}\n",
            "flops_per_sample that must be a positive number",
        ),
    ],
)
def test_each_fault_of_the_users_code_is_one_line_naming_file_and_function(
    tmp_path: Path, body: str, says: str
) -> None:
    f = _write(tmp_path, body)
    with pytest.raises(UserCodeError, match=says) as e:
        _build(f"{f}:build")
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"workload.factory {f}:build: ")


def test_parallelize_faults_name_it(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        "def base():\n"
        "    return {'model': torch.nn.Linear(1, 1), 'make_batch': len, 'loss_fn': len,\n"
        "            'samples_per_batch': 2}\n"
        "def raises(ctx):\n"
        "    def plan(model, mesh):\n"
        "        raise ValueError('no tp dim')\n"
        "    return {**base(), 'parallelize': plan}\n"
        "def wrong(ctx):\n"
        "    return {**base(), 'parallelize': lambda model, mesh: 'laid out'}\n"
        "def in_place(ctx):\n"
        "    return {**base(), 'parallelize': lambda model, mesh: None}\n",
    )
    plan = _build(f"{f}:raises").parallelize
    assert plan is not None
    with pytest.raises(UserCodeError, match=r"parallelize\(model, mesh\) raised ValueError: no tp"):
        plan(torch.nn.Linear(1, 1), None)
    plan = _build(f"{f}:wrong").parallelize
    assert plan is not None
    with pytest.raises(UserCodeError, match="must return the model .* got str"):
        plan(torch.nn.Linear(1, 1), None)
    plan = _build(f"{f}:in_place").parallelize
    model = torch.nn.Linear(1, 1)
    assert plan is not None and plan(model, None) is model  # None: laid out in place


def test_make_batch_with_a_dp_rank_makes_any_ranks_batch(tmp_path: Path) -> None:
    from minicluster.rank.workloads.custom import takes_dp_rank

    assert takes_dp_rank(lambda step, dp_rank: None)
    assert takes_dp_rank(lambda step, dp_rank=0: None)
    assert takes_dp_rank(lambda *args: None)
    assert not takes_dp_rank(lambda step: None)
    assert not takes_dp_rank(lambda step, *, dp_rank=0: None)  # keyword-only: not handed it
    wl = _build(f"{EXAMPLE}:build", rank=0, options={"width": 8, "depth": 1}, per_rank_batch=2)
    assert wl.any_rank_batches
    other = _build(f"{EXAMPLE}:build", rank=1, options={"width": 8, "depth": 1}, per_rank_batch=2)
    # rank 0 makes rank 1's batch when asked for it
    assert torch.equal(wl.make_batch(3, 1)[0], other.make_batch(3, 1)[0])
    assert not torch.equal(wl.make_batch(3, 0)[0], wl.make_batch(3, 1)[0])


def test_a_batch_the_config_fixed_must_be_honoured(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        "def build(ctx):\n    return {'model': torch.nn.Linear(1, 1), 'make_batch': len, "
        "'loss_fn': len, 'samples_per_batch': 3}\n",
    )
    with pytest.raises(UserCodeError, match="is 3 but workload.per_rank_batch is 4"):
        _build(f"{f}:build", per_rank_batch=4)


def test_make_batch_and_loss_fn_faults_name_them(tmp_path: Path) -> None:
    f = _write(
        tmp_path,
        "def build(ctx):\n"
        "    def make_batch(step):\n"
        "        if step == 2:\n"
        "            raise KeyError('shard 7')\n"
        "        return torch.ones(2, 1) if step else 'oops'\n"
        "    return {'model': torch.nn.Linear(1, 1), 'make_batch': make_batch,\n"
        "            'loss_fn': lambda o, t: o.sum(dim=1), 'samples_per_batch': 2}\n",
    )
    wl = _build(f"{f}:build")
    with pytest.raises(UserCodeError, match=r"make_batch\(2\) raised KeyError: 'shard 7'"):
        wl.make_batch(2, 0)
    with pytest.raises(UserCodeError, match=r"make_batch\(0\) must return \(inputs, targets\)"):
        wl.make_batch(0, 0)
    out = wl.model(torch.ones(2, 1))
    with pytest.raises(UserCodeError, match=r"loss_fn must return a scalar tensor, got \(2,\)"):
        wl.loss_fn(out, None)


def test_a_module_spec_imports_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "def build(ctx):\n    return 'x'\n", name="mc_user_mod_xyz.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_factory("mc_user_mod_xyz:build")(None) == "x"
    with pytest.raises(UserCodeError, match="importing mc_absent_mod raised ModuleNotFoundError"):
        load_factory("mc_absent_mod:build")
