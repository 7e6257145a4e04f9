#!/usr/bin/env bash
# Create .venv if missing and install minicluster with the tested versions (constraints.txt).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh train,dev
# Re-installs only when pyproject.toml or constraints.txt changed, or an extra is asked for that
# is not installed yet: an install with extras X satisfies any later request for a subset of X
# (scripts/run.sh asks for train, scripts/test.sh for train,dev,ray). A new extra is installed
# together with the ones already there, so the next subset request installs nothing.
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
sum="$(cat "$root/pyproject.toml" "$root/constraints.txt" | cksum)"
# The stamp: the installed extras (sorted, comma-separated), then the checksum they were
# installed at.
sorted_extras() { tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -; }
have="" have_sum=""
if [ -f "$stamp" ]; then
  read -r have have_sum <"$stamp" || true
fi
want="$(printf '%s,%s' "$have" "$extras" | sorted_extras)"
if [ "$have_sum" != "$sum" ] || [ "$want" != "$(printf '%s' "$have" | sorted_extras)" ]; then
  echo "[setup] installing minicluster[$want] with constraints.txt" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$root/constraints.txt" -e "$root[$want]"
  echo "$want $sum" >"$stamp"
fi
# Bytecode compiled here once: where PYTHONDONTWRITEBYTECODE is set, an editable install is
# otherwise compiled anew by every command (0.15 s of each `minicluster` start). Up-to-date files
# are skipped; a source changed later is compiled in memory, as without this.
"$venv/bin/python" -m compileall -q "$root/minicluster" >/dev/null || true
