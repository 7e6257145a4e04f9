"""What serving benchmarks (vLLM `bench serve`, SGLang `bench_serving`) share: the fingerprint of a
run from the settings the file declares, and the list of the file's fields an importer did not
read (listed in the record, never dropped silently)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from minicluster.result import fingerprint

# Keys that hold one value per request (lists): read or not, they are samples, not settings.
PER_REQUEST_KEYS = frozenset(
    {"input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors", "e2els"}
)


def request_rate(value: Any) -> float | str | None:
    """A request rate as the file declares it: a number, or 'inf' (vLLM writes the string,
    SGLang's JSON the constant Infinity: both mean every request sent at time 0)."""
    if value is None:
        return None
    if isinstance(value, str):
        return "inf" if value.strip().lower() in ("inf", "infinity") else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "inf" if math.isinf(value) else float(value)
    return str(value)


def serving_fingerprint(
    data: dict[str, Any],
    model: str | None,
    serving_backend: str | None,
    input_len: Any,
    output_len: Any,
    dataset: Any,
    source: str,
) -> dict[str, Any]:
    """The fingerprint of one serving run; a setting the file does not declare is unknown."""
    fields = {
        "model": model,
        "serving_backend": serving_backend,
        "max_concurrency": data.get("max_concurrency"),
        "request_rate": request_rate(data.get("request_rate")),
        "input_len": input_len,
        "output_len": output_len,
        "dataset": dataset,
    }
    unknown = {
        "max_concurrency": f"{source} records max_concurrency null: no limit was set, or it is "
        "not recorded"
        if "max_concurrency" in data
        else f"{source} output without max_concurrency",
        "model": f"{source} output without a model name",
        "input_len": f"{source} output does not declare the requested input length",
        "output_len": f"{source} output does not declare the requested output length",
        "dataset": f"{source} output does not name its dataset",
        "precision": f"{source} output does not record the server's precision",
        "gpu_model": f"{source} output does not record the server's hardware",
        "gpu_count": f"{source} output does not record the server's hardware",
        "cpu_model": f"{source} output does not record the server's hardware",
    }
    if data.get("max_concurrency") is None and "max_concurrency" in data:
        # null is a declared setting here: no concurrency limit
        fields["max_concurrency"] = "none"
    return fingerprint.make("inference", fields, unknown)


def unread_fields(data: dict[str, Any], read: Iterable[str]) -> list[str]:
    """The keys of `data` no importer rule reads, sorted (per-request lists included)."""
    seen = set(read)
    return sorted(k for k in data if k not in seen)
