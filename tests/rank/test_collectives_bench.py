"""The per-rank benchmark: fill values, expected values, wrong-element counts, unsupported ops.

The ops' results are simulated here with plain tensor arithmetic (no process group), so the
closed-form expected values are checked against an independent computation; one test runs the
real loop on a 1-rank gloo group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as tdist  # noqa: E402

from minicluster.core.choices import OPS  # noqa: E402
from minicluster.core.collective_defs import op_size  # noqa: E402
from minicluster.core.config import CollectivesSection  # noqa: E402
from minicluster.core.rank_format import Collective  # noqa: E402
from minicluster.rank import collectives  # noqa: E402
from minicluster.rank.collectives import OpCase, count_wrong, make_case, sum_prime  # noqa: E402

CPU = torch.device("cpu")


def _cases(op: str, n: int, dtype: str, nominal: int = 1024, root: int = 0) -> list[OpCase]:
    shape = op_size(op, nominal, n, dtype)
    return [make_case(op, shape, r, n, root, dtype, CPU) for r in range(n)]


def _simulate(op: str, cases: list[OpCase], root: int = 0, sum_in_dtype: bool = False) -> None:
    """Write into each rank's output what the collective would leave there."""
    n = len(cases)
    c = cases[0].shape.count
    inputs = [case.inp.clone() for case in cases]
    if op in ("all_reduce", "reduce_scatter"):
        if sum_in_dtype:  # rank by rank in the benchmark's dtype, as a ring would add
            total = inputs[0].clone()
            for t in inputs[1:]:
                total += t
        else:
            total = torch.stack([t.double() for t in inputs]).sum(0).to(inputs[0].dtype)
    for r, case in enumerate(cases):
        if op == "all_reduce":
            case.out.copy_(total)
        elif op == "reduce_scatter":
            case.out.copy_(total[r * c : (r + 1) * c])
        elif op == "broadcast":
            case.out.copy_(inputs[root])
        elif op == "all_gather":
            case.out.copy_(torch.cat(inputs))
        elif op == "all_to_all":
            case.out.copy_(torch.cat([inputs[s][r * c : (r + 1) * c] for s in range(n)]))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("op", OPS)
def test_expected_values_match_the_simulated_op(op: str, n: int, dtype: str) -> None:
    root = n - 1
    cases = _cases(op, n, dtype, root=root)
    if op == "broadcast":  # only the root has data; the others must be overwritten
        assert all(bool((c.inp == -1).all()) for r, c in enumerate(cases) if r != root)
    else:  # values depend on rank and index, so no rank's input is any other rank's
        assert len({tuple(case.inp[:8].tolist()) for case in cases}) == n
    for r, case in enumerate(cases):
        assert case.expected is not None
        if not (op == "broadcast" and r == root):  # the root's buffer is the answer already
            assert count_wrong(case.out, case.expected) > 0  # before the op
    _simulate(op, cases, root=root)
    for case in cases:
        assert count_wrong(case.out, case.expected) == 0


@pytest.mark.parametrize("op", OPS)
def test_corrupted_elements_are_counted(op: str) -> None:
    cases = _cases(op, 2, "float32")
    _simulate(op, cases)
    out = cases[1].out
    out[0] += 1
    out[-1] = float("nan")
    out[out.numel() // 2] = -out[out.numel() // 2] - 1
    assert count_wrong(cases[1].out, cases[1].expected) == 3
    assert count_wrong(cases[0].out, cases[0].expected) == 0


def test_swapped_chunks_are_wrong() -> None:
    """Values carry the source rank: all_gather output in the wrong rank order is caught."""
    cases = _cases("all_gather", 3, "float16")
    _simulate("all_gather", cases)
    c = cases[0].shape.count
    out = cases[0].out
    out[:c], out[c : 2 * c] = out[c : 2 * c].clone(), out[:c].clone()
    assert count_wrong(out, cases[0].expected) == 2 * c


@pytest.mark.parametrize(
    ("n", "dtype"), [(2, "bfloat16"), (64, "bfloat16"), (256, "bfloat16"), (1000, "float16")]
)
def test_sums_stay_exact_in_the_dtype(n: int, dtype: str) -> None:
    """Accumulated rank by rank in float16/bfloat16 the sums are still exact small integers."""
    cases = _cases("all_reduce", n, dtype, nominal=n * 2 * 16)
    _simulate("all_reduce", cases, sum_in_dtype=True)
    assert count_wrong(cases[0].out, cases[0].expected) == 0
    assert float(cases[0].out.max()) > 0


def test_sum_prime_and_the_limit_of_an_exact_check() -> None:
    assert sum_prime(2, "float32") == 65521  # the largest prime below 2^16
    assert sum_prime(8, "bfloat16") == 31  # 8 x 30 = 240 <= 256, the largest exact bfloat16 int
    assert sum_prime(64, "bfloat16") == 5
    assert sum_prime(256, "bfloat16") == 2
    assert sum_prime(257, "bfloat16") is None
    for n, dtype in ((4094, "float32"), (44, "float16"), (16, "bfloat16")):
        assert (sum_prime(n, dtype) or 0) > n  # the docstring's "misplaced is caught" range
    case = make_case(
        "all_reduce", op_size("all_reduce", 4096, 300, "bfloat16"), 0, 300, 0, "bfloat16", CPU
    )
    assert case.expected is None
    assert case.check_reason and "not checked" in case.check_reason


def _outputs(op: str, n: int, dtype: str, nominal: int = 4096) -> tuple[list[OpCase], int]:
    cases = _cases(op, n, dtype, nominal=nominal)
    _simulate(op, cases)
    return cases, cases[0].shape.count


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("n", [2, 3, 4, 8, 16])
def test_misplaced_data_is_wrong_whatever_the_world_size(n: int, dtype: str) -> None:
    """The mistakes a broken collective makes: a rotated buffer, another rank's chunk, the same
    chunk sent to every peer, ranks and chunks transposed. Each must count every element."""
    cases, _ = _outputs("all_reduce", n, dtype)
    out = cases[0].out
    assert count_wrong(torch.roll(out, 1), cases[0].expected) == out.numel()

    cases, c = _outputs("reduce_scatter", n, dtype)
    last = cases[-1]
    other = cases[0].out.clone()  # rank 0's correct chunk, delivered to the last rank
    assert count_wrong(other, last.expected) == c

    cases, c = _outputs("all_to_all", n, dtype)
    inputs = [case.inp for case in cases]
    r = n - 1
    first_chunk_to_all = torch.cat([inputs[s][:c] for s in range(n)])
    assert count_wrong(first_chunk_to_all, cases[r].expected) == n * c
    transposed = torch.cat([inputs[r][s * c : (s + 1) * c] for s in range(n)])
    wrong = count_wrong(transposed, cases[r].expected)
    assert wrong == (n - 1) * c  # all but the chunk a rank keeps for itself

    cases, c = _outputs("all_gather", n, dtype)
    swapped = torch.roll(cases[0].out, c)  # every rank's block one place along
    assert count_wrong(swapped, cases[0].expected) == n * c


@pytest.fixture
def one_rank_group(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from minicluster.rank.dist import free_port

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    tdist.init_process_group("gloo", rank=0, world_size=1)
    try:
        yield
    finally:
        tdist.destroy_process_group()


def _bench(ops: list[str]) -> list[dict[str, Any]]:
    section = CollectivesSection(ops=ops, min_bytes=1024, max_bytes=2048, iters=2, warmup_iters=1)
    records: list[Collective] = []
    collectives.run_benchmark(section, 0, 1, CPU, records.append)
    return [r.to_json() for r in records]


@pytest.mark.timeout(60)
def test_an_op_the_backend_lacks_is_recorded_per_size_with_its_reason(
    one_rank_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(out: Any, inp: Any) -> None:
        raise RuntimeError("ProcessGroupGloo does not support reduce_scatter\nC++ trace")

    monkeypatch.setattr(collectives, "_reduce_scatter_tensor", refuse)
    records = _bench(["reduce_scatter", "all_reduce"])
    assert [(r["op"], r["nominal_bytes"]) for r in records] == [
        ("reduce_scatter", 1024),
        ("reduce_scatter", 2048),
        ("all_reduce", 1024),
        ("all_reduce", 2048),
    ]
    for r in records[:2]:
        assert r["status"] == "unavailable"
        assert r["reason"] == (
            "gloo does not run it: RuntimeError: ProcessGroupGloo does not support reduce_scatter"
        )
        assert r["time_us"] is None and r["time_us_max"] is None and r["wrong"] is None
    for r in records[2:]:
        assert r["status"] == "measured" and r["reason"] is None
        assert r["wrong"] == 0
        assert r["time_us"] > 0 and r["time_us_max"] == r["time_us"]  # one rank: its own max


@pytest.mark.timeout(60)
def test_a_wrong_result_is_counted_not_hidden(
    one_rank_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def off_by_one(out: Any, inp: Any) -> None:
        out.copy_(inp)
        out[3] += 1

    monkeypatch.setattr(collectives, "_all_gather_tensor", off_by_one)
    records = _bench(["all_gather"])
    assert [r["wrong"] for r in records] == [1, 1]
    assert all(r["status"] == "measured" for r in records)


@pytest.mark.timeout(60)
def test_a_communication_failure_fails_the_run(
    one_rank_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def peer_gone(out: Any, inp: Any) -> None:
        raise tdist.DistBackendError("connection reset by peer")

    monkeypatch.setattr(collectives, "_all_gather_tensor", peer_gone)
    with pytest.raises(tdist.DistBackendError):
        _bench(["all_gather"])


@pytest.mark.timeout(60)
def test_buffers_that_do_not_fit_are_recorded_not_fatal(
    one_rank_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = collectives.make_case

    def no_memory_at_2k(op: str, shape: Any, *args: Any) -> OpCase:
        if shape.size_bytes >= 2048:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 KiB")
        return real(op, shape, *args)

    monkeypatch.setattr(collectives, "make_case", no_memory_at_2k)
    records = _bench(["all_reduce"])
    assert [r["status"] for r in records] == ["measured", "unavailable"]
    assert records[1]["reason"] == (
        "could not allocate the buffers: CUDA out of memory. Tried to allocate 2.00 KiB"
    )
