#!/usr/bin/env bash
# Set up (first time only) and run the default job: `minicluster run` with any extra arguments.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" train
cd "$root"
exec "${MINICLUSTER_VENV:-$root/.venv}/bin/minicluster" run "$@"
