"""The environment variables a launcher hands each rank beyond torchrun's own, named once."""

from __future__ import annotations

LAUNCHER = "MINICLUSTER_LAUNCHER"  # the launcher's name, recorded in the rank header
PROGRESS = "MINICLUSTER_PROGRESS"  # "0": the launcher shows progress, the ranks log none
RAY_VERSION = "MINICLUSTER_RAY_VERSION"  # under Ray: the Ray version the job runs on
RAY_NODE_ID = "MINICLUSTER_RAY_NODE_ID"  # under Ray: the worker's Ray node ID
