#!/usr/bin/env bash
# Set up (first time only, with the dev and ray extras) and run the whole test suite. Extra args go
# to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" train,dev,ray
cd "$root"
exec "${MINICLUSTER_VENV:-$root/.venv}/bin/python" -m pytest "$@"
