"""Import SGLang `bench_serving` output: a JSONL file to which every benchmark run appends one line
(request throughput, TTFT, TPOT, end-to-end latency; with `--output-details` per-request lists).

Each line is one run. SGLang writes the default request rate as the JSON constant `Infinity`
(Python's `json.dumps(float("inf"))`): accepted in `request_rate` only, where it means every
request sent at time 0; anywhere else a non-finite number is refused. The file names no model,
so the model is unknown (said by `compare`, never taken as equal). With `--output-details` the
per-request `errors` say how many requests failed, and every number covers the ones that
completed; without it the failures are not recorded.
"""

from __future__ import annotations

import json
import math
from typing import Any

from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord, count, number, registry_metric
from minicluster.interop.serving import serving_fingerprint, unread_fields

# registry metric -> (SGLang key, method)
_FIELDS = {
    "throughput_samples_per_sec": ("request_throughput", "SGLang request_throughput (requests/s)"),
    "tokens_per_sec": ("output_throughput", "SGLang output_throughput (output tokens/s)"),
    "ttft_ms": ("median_ttft_ms", "SGLang median_ttft_ms"),
    "decode_tpt_ms": ("median_tpot_ms", "SGLang median_tpot_ms (time per output token)"),
    "latency_p50_ms": ("median_e2e_latency_ms", "SGLang median_e2e_latency_ms (end-to-end)"),
    "latency_p99_ms": ("p99_e2e_latency_ms", "SGLang p99_e2e_latency_ms (end-to-end)"),
    "latency_mean_ms": ("mean_e2e_latency_ms", "SGLang mean_e2e_latency_ms (end-to-end)"),
}
# the keys that tell an SGLang run from a vLLM one (vLLM names its end-to-end latency e2el)
SIGNATURE = ("median_e2e_latency_ms", "completed")
_READ = frozenset(
    {key for key, _m in _FIELDS.values()}
    | {
        "backend",
        "dataset_name",
        "request_rate",
        "max_concurrency",
        "random_input_len",
        "random_output_len",
        "sharegpt_output_len",
        "duration",
        "completed",
        "total_input_tokens",
        "total_output_tokens",
        "ttfts",
        "errors",
    }
)
_UNKNOWN = {
    "world_size": "SGLang bench_serving does not record the server's parallelism",
    "per_rank_batch": "a serving benchmark has no batch size: the server batches requests",
    "global_batch": "a serving benchmark has no batch size: the server batches requests",
    "backend": "SGLang bench_serving does not record a communication backend",
    "nodes": "SGLang bench_serving does not record the server's nodes",
}


def parse_lines(text: str, where: str) -> list[dict[str, Any]]:
    """Every non-empty line of an SGLang JSONL file as an object; `Infinity` is read as inf (the
    importer accepts it in `request_rate` only). InputError naming the line that is not JSON."""
    runs: list[dict[str, Any]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(
                line, parse_constant=lambda name: float(name.replace("Infinity", "inf"))
            )
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: line {i} is not JSON ({e.msg}): not SGLang JSONL") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: line {i} is not a JSON object")
        runs.append(obj)
    if not runs:
        raise InputError(f"{where}: no run in the file")
    return runs


def looks_like(obj: dict[str, Any]) -> bool:
    return all(k in obj for k in SIGNATURE)


def to_record(data: dict[str, Any], label: str) -> BenchmarkRecord:
    """One run (one line) of SGLang bench_serving output."""
    if not looks_like(data):
        raise InputError(
            "not SGLang bench_serving output (no 'completed' or 'median_e2e_latency_ms')"
        )
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value) and key != "request_rate":
            raise InputError(f"{key}: expected a finite number, got {value!r}")
    completed = count(data["completed"], "completed")
    if completed is None:
        raise InputError("'completed' is null: not SGLang bench_serving output")
    errors = data.get("errors")
    failed = sent = None
    if isinstance(errors, list):
        sent = len(errors)
        failed = sum(1 for e in errors if e)
    coverage = Coverage("requests", completed, sent) if sent else None
    warnings: list[str] = []
    metrics: dict[str, MetricValue] = {
        "requests_completed": registry_metric(
            "requests_completed", float(completed), "measured", "SGLang completed"
        ),
        "requests_failed": registry_metric(
            "requests_failed",
            None if failed is None else float(failed),
            "measured",
            "SGLang per-request errors (--output-details)",
            "SGLang records failed requests only with --output-details",
        ),
        "request_success_rate_percent": registry_metric(
            "request_success_rate_percent",
            100.0 * completed / sent if sent else None,
            "derived",
            "SGLang completed / requests in --output-details",
            "SGLang records the requests sent only with --output-details",
        ),
    }
    if sent and completed < sent:
        warnings.append(
            f"{sent - completed} of {sent} requests failed: every latency and throughput covers "
            f"the {completed} that completed"
        )
    samples: dict[str, list[float]] = {}
    if not completed:
        reason = "SGLang run completed 0 requests: nothing was measured"
        warnings.append(reason)
        for name, (_key, method) in _FIELDS.items():
            metrics[name] = registry_metric(name, None, "measured", method, reason)
    else:
        for name, (key, method) in _FIELDS.items():
            if key in data:
                metrics[name] = registry_metric(
                    name, number(data[key], key), "measured", method, f"{key} is null", coverage
                )
        ttfts = data.get("ttfts")
        if isinstance(ttfts, list):
            # per-request TTFT in seconds; a failed request carries 0
            ttft_ms = [
                v * 1000.0
                for i, x in enumerate(ttfts)
                if (v := number(x, f"ttfts[{i}]")) is not None and v > 0
            ]
            if ttft_ms:
                samples["ttft_ms"] = ttft_ms
    dataset = data.get("dataset_name")
    random = isinstance(dataset, str) and dataset.startswith("random")
    input_len = data.get("random_input_len") if random else None
    output_len = data.get("random_output_len") if random else data.get("sharegpt_output_len")
    if not random and dataset:
        input_len = f"from the dataset ({dataset})"
        output_len = output_len if output_len is not None else f"from the dataset ({dataset})"
    backend = str(data["backend"]) if data.get("backend") else None
    return BenchmarkRecord(
        label=label,
        source_format="sglang",
        tool=f"SGLang bench_serving ({backend or 'unknown backend'})",
        tool_version=None,
        workload_type="inference",
        workload_name="unknown",
        hardware=None,
        metrics=metrics,
        samples=samples,
        warnings=warnings,
        details={
            "completed": completed,
            "failed": failed,
            "num_prompts": sent,
            "request_rate": data.get("request_rate")
            if not isinstance(data.get("request_rate"), float)
            or math.isfinite(data["request_rate"])
            else "inf",
            "max_concurrency": data.get("max_concurrency"),
            "duration_s": number(data.get("duration"), "duration"),
            "total_input_tokens": count(data.get("total_input_tokens"), "total_input_tokens"),
            "total_output_tokens": count(data.get("total_output_tokens"), "total_output_tokens"),
        },
        unknown=dict(_UNKNOWN),
        fingerprint=serving_fingerprint(
            data, None, backend, input_len, output_len, dataset, "SGLang bench_serving"
        ),
        unread_fields=unread_fields(data, _READ),
    )
