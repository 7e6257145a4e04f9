#!/usr/bin/env bash
# Create .venv if missing and install minicluster with the tested versions (constraints.txt).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh train,dev
# Re-installs only when pyproject.toml, constraints.txt or the extras changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-train}"
venv="${MINICLUSTER_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.minicluster-installed"
want="$extras $(cat "$root/pyproject.toml" "$root/constraints.txt" | cksum)"
if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
  echo "[setup] installing minicluster[$extras] with constraints.txt" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$root/constraints.txt" -e "$root[$extras]"
  echo "$want" >"$stamp"
fi
