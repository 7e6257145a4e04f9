"""nccl-tests conventions: size text, what size and count mean per op, algbw and busbw."""

from __future__ import annotations

import pytest

from minicluster.core import collective_defs as cd
from minicluster.core.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [
        ("4096", 4096),
        ("1K", 1024),
        ("1k", 1024),
        (" 64M ", 64 * 1024**2),
        ("64MB", 64 * 1024**2),
        ("64MiB", 64 * 1024**2),
        ("1G", 1024**3),
        ("3K", 3072),
    ],
)
def test_parse_size_uses_binary_units(text: str, n_bytes: int) -> None:
    assert parse_size(text) == n_bytes


@pytest.mark.parametrize("text", ["", "K", "1.5K", "-1K", "1T", "1 K B x", "１K", "0x10"])
def test_parse_size_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_format_size_is_exact_or_plain_bytes() -> None:
    assert format_size(1024) == "1K"
    assert format_size(256 * 1024**2) == "256M"
    assert format_size(2 * 1024**3) == "2G"
    assert format_size(1020) == "1020"
    assert format_size(1536) == "1536"  # 1.5K is not exact in K: plain bytes


def test_nominal_sizes_step_from_min_to_max_inclusive() -> None:
    assert cd.nominal_sizes(1024, 64 * 1024, 2) == [1024 * 2**i for i in range(7)]
    assert cd.nominal_sizes(1024, 3 * 1024, 2) == [1024, 2048]
    assert cd.nominal_sizes(1000, 64_000, 4) == [1000, 4000, 16000, 64000]
    assert cd.nominal_sizes(2048, 1024, 2) == []


@pytest.mark.parametrize(
    ("op", "n", "dtype", "nominal", "size", "count", "in_elems", "out_elems"),
    [
        # all_reduce / broadcast: the buffer; rounded to n x element size (3 x 4 = 12 B)
        ("all_reduce", 3, "float32", 1024, 1020, 255, 255, 255),
        ("broadcast", 2, "float32", 1024, 1024, 256, 256, 256),
        # all_gather: size is the gathered output; count is the per-rank input
        ("all_gather", 2, "float32", 1024, 1024, 128, 128, 256),
        ("all_gather", 3, "float16", 1024, 1020, 170, 170, 510),
        # reduce_scatter: size is the input (n x output); count is the per-rank output
        ("reduce_scatter", 4, "float32", 1024, 1024, 64, 256, 64),
        # all_to_all: size is the bytes sent per rank; count is the chunk per peer
        ("all_to_all", 2, "bfloat16", 1024, 1024, 256, 512, 512),
        # below n x element size nothing is left to send
        ("all_gather", 512, "float32", 1024, 0, 0, 0, 0),
    ],
)
def test_op_size_follows_nccl_tests(
    op: str,
    n: int,
    dtype: str,
    nominal: int,
    size: int,
    count: int,
    in_elems: int,
    out_elems: int,
) -> None:
    s = cd.op_size(op, nominal, n, dtype)
    assert (s.size_bytes, s.count, s.in_elems, s.out_elems) == (size, count, in_elems, out_elems)
    assert s.size_bytes % (n * cd.DTYPE_BYTES[dtype]) == 0
    assert s.nominal_bytes == nominal


def test_op_size_rejects_unknown_ops() -> None:
    with pytest.raises(ValueError, match="unknown collective 'reduce'"):
        cd.op_size("reduce", 1024, 2, "float32")


@pytest.mark.parametrize(
    ("op", "n", "factor"),
    [
        ("all_reduce", 2, 1.0),
        ("all_reduce", 8, 1.75),
        ("all_reduce", 1, 0.0),
        ("all_gather", 2, 0.5),
        ("reduce_scatter", 8, 0.875),
        ("all_to_all", 4, 0.75),
        ("broadcast", 8, 1.0),
    ],
)
def test_busbw_factors_are_nccl_tests(op: str, n: int, factor: float) -> None:
    assert cd.busbw_factor(op, n) == factor


def test_algbw_is_decimal_gb_per_second() -> None:
    # 1e9 bytes in one second (1e6 us) is 1 GB/s, not 1 GiB/s
    assert cd.algbw_gbps(1_000_000_000, 1e6) == 1.0
    assert cd.algbw_gbps(1024, 100.0) == pytest.approx(0.01024)
    assert cd.busbw_gbps("all_reduce", 2**20, 1000.0, 4) == pytest.approx(2**20 / 1e-3 / 1e9 * 1.5)


def _reference(op: str, inputs: list[list[int]], rank: int, root: int, c: int) -> list[int]:
    """What `op` delivers to `rank`, written from the op's definition (not from its spec)."""
    n = len(inputs)
    if op == "all_reduce":
        return [sum(col) for col in zip(*inputs, strict=True)]
    if op == "reduce_scatter":
        return [sum(inp[rank * c + k] for inp in inputs) for k in range(c)]
    if op == "all_gather":
        return [x for inp in inputs for x in inp]
    if op == "broadcast":
        return list(inputs[root])
    assert op == "all_to_all"
    return [inputs[s][rank * c + k] for s in range(n) for k in range(c)]


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("op", cd.OPS)
def test_each_specs_expected_values_are_what_the_op_delivers(op: str, n: int) -> None:
    """The spec's input keys and expected outputs, checked against each op's definition run on
    plain integers: a wrong key, source or chunk in the table fails here."""
    spec = cd.spec(op)
    p, c, root = 31, 5, n - 1
    shape = cd.op_size(op, n * c * 4, n, "float32")
    assert shape.count == c or shape.count == n * c
    inputs = [
        [(s * cd.RANK_STEP + spec.in_key(i, c)) % p for i in range(shape.in_elems)]
        for s in range(n)
    ]
    for rank in range(n):
        got = _reference(op, inputs, rank, root, c)
        assert len(got) == shape.out_elems
        for i, value in enumerate(got):
            if spec.reduces:
                assert spec.out_key is not None
                key = spec.out_key(i, c, rank)
                want = sum((s * cd.RANK_STEP + key) % p for s in range(n))
            else:
                assert spec.source is not None
                src, key = spec.source(i, c, rank, root)
                want = (src * cd.RANK_STEP + key) % p
            assert value == want, (op, n, rank, i)


@pytest.mark.parametrize("op", cd.OPS)
def test_each_busbw_factor_matches_its_text(op: str) -> None:
    spec = cd.spec(op)
    for n in (1, 2, 3, 8):
        text = spec.busbw_factor_text.replace("(n-1)", f"({n}-1)").replace("/n", f"/{n}")
        assert spec.busbw_factor(n) == pytest.approx(eval(text.replace("2(", "2*(")))  # noqa: S307
