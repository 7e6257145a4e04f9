#!/usr/bin/env bash
# The GPU path, checked in one go (NCCL, CUDA events, NVML), under 5 minutes on N >= 1 GPUs:
#   1. minicluster doctor
#   2. a default run on NCCL with N ranks (one per GPU)
#   3. validate (needs 2 GPUs: NCCL runs one rank per GPU)
#   4. collectives on N ranks, sizes 1K..256M
# Per check it prints ok/failed, the timing method, all-reduce vs step time, NVML energy and power
# (value and status), and busbw. Without a GPU it says so and exits 0 (nothing to check).
# Usage: bash scripts/gpu_check.sh [OUT_DIR]      (PYTHON=... picks the interpreter)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$(mktemp -d /tmp/minicluster-gpu-check.XXXXXX)}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mc() { "$PYTHON" -m minicluster "$@"; }

gpus=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo "error")
if [ "$gpus" = "error" ]; then
  echo "gpu_check: torch is not importable with $PYTHON; run bash scripts/setup.sh first" >&2
  exit 2
fi
echo "gpu_check: $gpus GPU(s) visible to torch; python $PYTHON; output under $out"
if [ "$gpus" = "0" ]; then
  echo "gpu_check: no GPU: nothing to check here (the NCCL, CUDA-event and NVML paths need one)"
  mc doctor
  exit 0
fi
"$PYTHON" -c 'import torch; print("gpu_check: torch", torch.__version__, "CUDA", torch.version.cuda, "device 0:", torch.cuda.get_device_name(0))'
mkdir -p "$out"

summary() {  # $1 = check name, $2 = exit code, $3 = run directory
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import json, sys
name, code, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    r = json.load(open(f"{run}/result.json"))
except (OSError, ValueError) as e:
    print(f"[{name}] FAILED (exit {code}): no result.json ({e})")
    raise SystemExit
m = r["metrics"]
def v(k):
    x = m.get(k) or {}
    return f"{x.get('value')!r} {x.get('unit', '')} ({x.get('status')}{': ' + x['reason'] if x.get('reason') else ''})"
ok = "ok" if code == 0 and r["status"] == "ok" else "FAILED"
print(f"[{name}] {ok} (exit {code}, status {r['status']}); backend {r.get('backend')}; "
      f"timing method {r.get('timing_method')}")
if r.get("collectives"):
    rows = [x for x in r["collectives"]["results"] if x["op"] == "all_reduce" and x["busbw_gbps"]]
    top = max(rows, key=lambda x: x["size_bytes"]) if rows else None
    print(f"    wrong elements {r['collectives']['wrong_total']}; peak busbw {v('busbw_gbps')}")
    if top:
        print(f"    all_reduce at {top['size_bytes']} B: {top['time_us']:.1f} us, busbw {top['busbw_gbps']:.2f} GB/s")
else:
    print(f"    step p50 {v('latency_p50_ms')}; all-reduce {v('allreduce_ms')}; "
          f"transfer {v('allreduce_transfer_ms')}; busbw {v('busbw_gbps')}")
print(f"    energy/step {v('energy_per_step_joules')}; power {v('power_consumption_watts')}; "
      f"temperature {v('temperature_celsius')}")
for e in r.get("errors") or []:
    print(f"    error: {e}")
PY
}

echo "== doctor"; mc doctor
echo "== run: $gpus rank(s) on NCCL"
timeout 120 "$PYTHON" -m minicluster run --nproc "$gpus" --out "$out/run" >"$out/run.log" 2>&1
summary run $? "$out/run"
echo "== run with the comm hook (CUDA events)"
printf 'run: {comm_timing: hook}\n' >"$out/hook.yaml"
timeout 120 "$PYTHON" -m minicluster run -c "$out/hook.yaml" --nproc "$gpus" --out "$out/hook" >"$out/hook.log" 2>&1
summary run-hook $? "$out/hook"
if [ "$gpus" -ge 2 ]; then
  echo "== validate: 2 ranks"
  timeout 120 "$PYTHON" -m minicluster validate --nproc 2 --out "$out/validate" >"$out/validate.log" 2>&1
  summary validate $? "$out/validate"
else
  echo "== validate: skipped (NCCL runs one rank per GPU; validate compares 2 or more ranks)"
fi
echo "== collectives: $gpus rank(s), 1K..256M"
timeout 150 "$PYTHON" -m minicluster collectives --nproc "$gpus" --sizes 1K:256M --out "$out/coll" >"$out/coll.log" 2>&1
summary collectives $? "$out/coll"
echo "gpu_check: logs and results under $out"
