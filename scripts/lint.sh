#!/usr/bin/env bash
# Format check, lint and type check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" train,dev
cd "$root"
bin="${MINICLUSTER_VENV:-$root/.venv}/bin"
"$bin/ruff" format --check minicluster tests scripts
"$bin/ruff" check minicluster tests scripts
"$bin/mypy" minicluster
