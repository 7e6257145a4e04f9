"""launch/slurm_healthcheck.sh's decision on isolate's exit 1, without Slurm: a stand-in
`minicluster` prints a verdict and a stand-in `scontrol` records what it was asked. A rank named
BAD drains the node (exit 1); ranks only UNRESOLVED (noise: nobody named) never drain (exit 2)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "launch" / "slurm_healthcheck.sh"


def _check(tmp_path: Path, isolate_verdict: str) -> tuple[int, str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    fake = bin_dir / "fake-minicluster"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = isolate ]; then\n'
        f"  echo 'round 1: screen [rank 0, rank 1] 0.2 GB/s (100%)'\n"
        f"  echo '{isolate_verdict}'\n"
        "  exit 1\n"
        "fi\n"
        "exit 0\n"
    )
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
    for f in (fake, scontrol):
        f.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MINICLUSTER": str(fake),
        "NODE": "node7",
        "NPROC": "4",
        "OUT": str(tmp_path / "out"),
        "SKIP_RUN": "1",
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stderr, calls.read_text() if calls.exists() else ""


@pytest.mark.parametrize(
    ("verdict", "code", "drained"),
    [
        ("isolate: BAD: rank 2 (evidence 6.9 >= 6.9 over 4 tests) [5 round(s)]", 1, True),
        (
            "isolate: UNRESOLVED (not named bad): rank 3 (nothing left to test; rerun, or more "
            "--passes) [14 round(s)]",
            2,
            False,
        ),
        ("isolate: BAD: rank 2 (...); UNRESOLVED (not named bad): rank 3 (...)", 1, True),
    ],
)
def test_isolate_unresolved_is_inconclusive_never_a_drain(
    tmp_path: Path, verdict: str, code: int, drained: bool
) -> None:
    rc, err, calls = _check(tmp_path, verdict)
    assert rc == code, err
    if drained:
        assert "NodeName=node7 State=DRAIN" in calls and "isolate: BAD: rank 2" in calls
    else:
        assert calls == "" and "inconclusive" in err and "not drained" in err
