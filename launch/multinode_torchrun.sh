#!/usr/bin/env bash
# minicluster across nodes without a scheduler: run this on every node (c10d rendezvous).
#
#   # on node-a (any node can be the endpoint; it must be reachable from all of them)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node-a MASTER_PORT=29500 NPROC_PER_NODE=8 \
#     launch/multinode_torchrun.sh -c configs/default.yaml --out runs/job1
#   # on node-b: the same, with NODE_RANK=1
#
# Extra arguments go to `minicluster run` unchanged. Each node writes its own ranks' files to
# its --out; rank 0's node writes result.json, the others node.json saying where it went (one
# directory for all when --out is on a shared filesystem). Exit code: minicluster's (0 ok,
# 1 check failed, 2 bad input, 3 run failed, 130 interrupted). See launch/README.md.
set -euo pipefail

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
NPROC_PER_NODE=${NPROC_PER_NODE:-}   # empty: the config's run.nproc
RDZV_ID=${RDZV_ID:-minicluster}      # the same on every node of one job
MINICLUSTER=${MINICLUSTER:-minicluster}  # e.g. ".venv/bin/python -m minicluster"

# shellcheck disable=SC2086  # MINICLUSTER may be a command with arguments
exec $MINICLUSTER run \
  --nnodes "$NNODES" \
  --node-rank "$NODE_RANK" \
  --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" \
  --rdzv-id "$RDZV_ID" \
  ${NPROC_PER_NODE:+--nproc-per-node "$NPROC_PER_NODE"} \
  "$@"
