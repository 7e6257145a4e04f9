#!/usr/bin/env bash
# A short minicluster check of this node for Slurm's HealthCheckProgram (slurm.conf) or a
# prolog: `minicluster doctor`, collectives on the node's devices (`minicluster isolate`: groups
# of its ranks, a bad one named), a short training run. A failing verdict (exit 1 of a check)
# drains the node with the verdict as the reason:
#
#   scontrol update NodeName=$NODE State=DRAIN Reason="minicluster: <verdict>"
#
# It never resumes a node (an operator does, `scontrol update NodeName=... State=RESUME`), and it
# never drains on a check that could not run (minicluster missing, bad input, a rank that
# crashed, a timeout): that exits 2 and says so, leaving the node as it was.
#
#   HealthCheckProgram=/opt/minicluster/launch/slurm_healthcheck.sh   (slurm.conf)
#   HealthCheckInterval=3600
#
# Exit: 0 healthy; 1 a failing verdict (the node was drained); 2 the check could not run (not
# drained); 3 the check failed but the drain itself failed (scontrol's error said).
# Environment: MINICLUSTER (the command, default `minicluster`), NPROC (ranks, default the
# node's GPUs, at least 4: isolate judges groups of ranks against each other), OUT (default a new temp directory, kept), ISOLATE_ARGS (more flags for isolate,
# e.g. `--min-busbw 150` from a reference), SKIP_RUN=1 (no training run), TIMEOUT_S (per check,
# default 300), NODE (default $SLURMD_NODENAME, else `hostname -s`).
set -uo pipefail

MINICLUSTER=${MINICLUSTER:-minicluster}
NODE=${NODE:-${SLURMD_NODENAME:-$(hostname -s)}}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/minicluster-healthcheck.XXXXXX")}
TIMEOUT_S=${TIMEOUT_S:-300}
if [ -z "${NPROC:-}" ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  NPROC=$(( gpus >= 4 ? gpus : 4 ))  # isolate judges groups against each other: 2 groups or more
fi
mkdir -p "$OUT" || { echo "slurm_healthcheck: cannot create $OUT: check not run, node left as it is" >&2; exit 2; }

say() { echo "slurm_healthcheck: $NODE: $*" >&2; }

# run NAME CMD...: the check's exit code; its output in $OUT/NAME.log
run() {
  local name=$1; shift
  # shellcheck disable=SC2086  # MINICLUSTER may be "python -m minicluster"
  timeout "$TIMEOUT_S" $MINICLUSTER "$@" >"$OUT/$name.log" 2>&1
}

# verdict NAME: the check's verdict line (the last line naming what failed, else its last
# line), quotes dropped, at most 200 characters (a Slurm reason is one short line)
verdict() {
  local line
  line=$(grep -E '(BAD|SLOW|FAIL|WRONG|slow_link|straggler|corrupt|diverge)' "$OUT/$1.log" | tail -n 1)
  [ -n "$line" ] || line=$(grep -v '^\s*$' "$OUT/$1.log" | tail -n 1)
  printf '%s' "$line" | tr -d '"\n' | cut -c1-200
}

drain() {
  local reason="minicluster: $1"
  say "draining: $reason"
  if ! scontrol update NodeName="$NODE" State=DRAIN Reason="$reason"; then
    say "scontrol update failed: the node is NOT drained"
    exit 3
  fi
  exit 1
}

could_not_run() {
  say "the $1 check could not run (exit $2; see $OUT/$1.log): node left as it is, not drained"
  tail -n 3 "$OUT/$1.log" >&2 2>/dev/null
  exit 2
}

judge() {  # judge NAME RC
  case "$2" in
    0) say "$1: ok" ;;
    1) drain "$1: $(verdict "$1")" ;;
    *) could_not_run "$1" "$2" ;;
  esac
}

run doctor doctor; judge doctor $?

# shellcheck disable=SC2086  # ISOLATE_ARGS is a list of flags
run isolate isolate --nproc "$NPROC" --size 1M --iters 5 --warmup-iters 1 --passes 5 \
  --out "$OUT/isolate" ${ISOLATE_ARGS:-}
rc=$?
# Exit 1 with nobody named bad (no BAD, MORE THAN k, WRONG), only UNRESOLVED ranks: the noise
# kept the sequential test from deciding; that is no verdict on the node: not drained, exit 2.
if [ "$rc" = 1 ] && ! grep -qE '(isolate: BAD:|MORE THAN [0-9]+ BAD|WRONG:)' "$OUT/isolate.log" \
  && grep -q 'UNRESOLVED (not named bad)' "$OUT/isolate.log"; then
  say "isolate: inconclusive: $(verdict isolate): node left as it is, not drained"
  exit 2
fi
judge isolate $rc

if [ "${SKIP_RUN:-0}" != 1 ]; then
  cat >"$OUT/job.yaml" <<EOF
workload: {name: mlp, per_rank_batch: 16, input_dim: 64, hidden_dim: 128, num_layers: 2}
steps: {warmup: 2, measured: 10}
run: {nproc: $NPROC, collective_timeout_s: 60}
EOF
  run run run -c "$OUT/job.yaml" --out "$OUT/run"
  judge run $?
fi

say "healthy (checks under $OUT)"
exit 0
