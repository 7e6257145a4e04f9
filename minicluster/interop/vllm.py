"""Import vLLM `benchmark_serving` / `vllm bench serve` JSON (requests, TTFT, TPOT, end-to-end
latency), with the requests every number covers.

vLLM computes every latency and throughput over the requests that completed: a run where most
requests failed looks fast. So the completed and failed counts and the success rate are metrics,
and every other metric carries its coverage (`completed` of the requests sent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minicluster.core.coverage import Coverage
from minicluster.core.errors import InputError
from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord, count, number, registry_metric
from minicluster.interop.serving import serving_fingerprint, unread_fields

# registry metric -> (vLLM key, method)
_FIELDS = {
    "throughput_samples_per_sec": ("request_throughput", "vLLM request_throughput (requests/s)"),
    "tokens_per_sec": ("output_throughput", "vLLM output_throughput (output tokens/s)"),
    "ttft_ms": ("median_ttft_ms", "vLLM median_ttft_ms"),
    "decode_tpt_ms": ("median_tpot_ms", "vLLM median_tpot_ms (time per output token)"),
    "latency_p50_ms": ("median_e2el_ms", "vLLM median_e2el_ms (end-to-end request latency)"),
    "latency_p90_ms": ("p90_e2el_ms", "vLLM p90_e2el_ms"),
    "latency_p95_ms": ("p95_e2el_ms", "vLLM p95_e2el_ms"),
    "latency_p99_ms": ("p99_e2el_ms", "vLLM p99_e2el_ms"),
    "latency_mean_ms": ("mean_e2el_ms", "vLLM mean_e2el_ms"),
}
# every key a rule of this importer reads (the rest are listed as unread)
_READ = frozenset(
    {key for key, _method in _FIELDS.values()}
    | {
        "completed",
        "failed",
        "num_prompts",
        "ttfts",
        "model_id",
        "model",
        "backend",
        "version",
        "date",
        "request_rate",
        "max_concurrency",
        "duration",
        "total_input_tokens",
        "total_output_tokens",
        "random_input_len",
        "random_output_len",
        "dataset_name",
    }
)
_UNKNOWN = {
    "world_size": "vLLM benchmark_serving does not record the server's parallelism",
    "per_rank_batch": "a serving benchmark has no batch size: the server batches requests",
    "global_batch": "a serving benchmark has no batch size: the server batches requests",
    "backend": "vLLM benchmark_serving does not record a communication backend",
    "nodes": "vLLM benchmark_serving does not record the server's nodes",
}


def to_record(data: dict[str, Any], label: str) -> BenchmarkRecord:
    """InputError when `data` has no `completed` count: then it is not benchmark_serving output
    (a `vllm bench latency` file, say), and reading it as one would report 0 requests."""
    if "completed" not in data:
        raise InputError("no 'completed' field: not vLLM benchmark_serving output")
    completed = count(data["completed"], "completed")
    if completed is None:
        raise InputError("'completed' is null: not vLLM benchmark_serving output")
    failed = count(data.get("failed"), "failed")
    prompts = count(data.get("num_prompts"), "num_prompts")
    sent = completed + failed if failed is not None else prompts
    if sent is not None and sent < completed:
        raise InputError(f"completed ({completed}) is more than the requests sent ({sent})")
    coverage = Coverage("requests", completed, sent) if sent else None
    warnings: list[str] = []
    metrics: dict[str, MetricValue] = _request_metrics(completed, failed, sent, warnings)
    samples: dict[str, list[float]] = {}
    if not completed:
        reason = "vLLM run completed 0 requests: nothing was measured"
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
            # vLLM stores per-request TTFT in seconds; failed requests carry 0.
            ttft_ms = [
                v * 1000.0
                for i, x in enumerate(ttfts)
                if (v := number(x, f"ttfts[{i}]")) is not None and v > 0
            ]
            if ttft_ms:
                samples["ttft_ms"] = ttft_ms
    model = str(data.get("model_id") or data.get("model") or "unknown")
    fp = serving_fingerprint(
        data,
        model if model != "unknown" else None,
        str(data["backend"]) if data.get("backend") else None,
        data.get("random_input_len"),
        data.get("random_output_len"),
        data.get("dataset_name"),
        "vLLM benchmark_serving",
    )
    return BenchmarkRecord(
        label=label,
        source_format="vllm",
        tool=f"vllm benchmark_serving ({data.get('backend', 'vllm')})",
        tool_version=str(data["version"]) if data.get("version") else None,
        workload_type="inference",
        workload_name=model,
        hardware=None,
        metrics=metrics,
        samples=samples,
        warnings=warnings,
        details={
            "timestamp": _timestamp(data.get("date")),
            "completed": completed,
            "failed": failed,
            "num_prompts": prompts,
            "request_rate": data.get("request_rate"),
            "max_concurrency": data.get("max_concurrency"),
            "duration_s": number(data.get("duration"), "duration"),
            "total_input_tokens": count(data.get("total_input_tokens"), "total_input_tokens"),
            "total_output_tokens": count(data.get("total_output_tokens"), "total_output_tokens"),
        },
        unknown=dict(_UNKNOWN),
        fingerprint=fp,
        unread_fields=unread_fields(data, _READ),
    )


def _request_metrics(
    completed: int, failed: int | None, sent: int | None, warnings: list[str]
) -> dict[str, MetricValue]:
    method = "vLLM completed / (completed + failed), or / num_prompts when 'failed' is absent"
    out = {
        "requests_completed": registry_metric(
            "requests_completed", float(completed), "measured", "vLLM completed"
        ),
        "requests_failed": registry_metric(
            "requests_failed",
            None if failed is None else float(failed),
            "measured",
            "vLLM failed",
            "no 'failed' field (vLLM before it reported failures)",
        ),
        "request_success_rate_percent": registry_metric(
            "request_success_rate_percent",
            100.0 * completed / sent if sent else None,
            "derived",
            method,
            "neither 'failed' nor 'num_prompts' says how many requests were sent",
        ),
    }
    if sent and completed < sent:
        warnings.append(
            f"{sent - completed} of {sent} requests failed: every latency and throughput covers "
            f"the {completed} that completed"
        )
    return out


def _timestamp(date: Any) -> str | None:
    """vLLM's `date` (`20260301-101500`, local time) as ISO-8601, or None."""
    if not isinstance(date, str):
        return None
    try:
        return datetime.strptime(date, "%Y%m%d-%H%M%S").isoformat()
    except ValueError:
        return None
