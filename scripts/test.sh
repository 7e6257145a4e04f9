#!/usr/bin/env bash
# Set up (first time only, with dev extras) and run the whole test suite. Extra args go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" train,dev
cd "$root"
exec "${MINICLUSTER_VENV:-$root/.venv}/bin/python" -m pytest "$@"
