"""Import vLLM `benchmark_serving` JSON output (requests, TTFT, TPOT, end-to-end latency)."""

from __future__ import annotations

from typing import Any

from minicluster.core.metrics import MetricValue
from minicluster.interop.record import BenchmarkRecord, count, number, registry_metric

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


def to_record(data: dict[str, Any], label: str) -> BenchmarkRecord:
    completed = count(data.get("completed"), "completed")
    warnings: list[str] = []
    metrics: dict[str, MetricValue] = {}
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
                    name, number(data[key], key), "measured", method, f"{key} is null"
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
            "completed": completed,
            "num_prompts": data.get("num_prompts"),
            "request_rate": data.get("request_rate"),
            "max_concurrency": data.get("max_concurrency"),
            "duration_s": number(data.get("duration"), "duration"),
            "total_input_tokens": count(data.get("total_input_tokens"), "total_input_tokens"),
            "total_output_tokens": count(data.get("total_output_tokens"), "total_output_tokens"),
        },
    )
