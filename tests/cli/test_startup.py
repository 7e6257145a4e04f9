"""At run time, the commands that need no torch start without it (the static layer contracts are
in tests/test_architecture.py): `--help` of every command, with torch and ray unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'ray'):
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
from minicluster.cli import main
for cmd in sys.argv[1:]:
    try:
        main([cmd, '--help'] if cmd != '-' else ['--help'])
    except SystemExit as e:
        assert e.code == 0, (cmd, e.code)
assert not any(k == 'torch' or k.startswith('torch.') for k in sys.modules), 'torch imported'
print('ok')
"""


@pytest.mark.timeout(60)
def test_every_help_runs_without_torch() -> None:
    from minicluster.cli.parser import command_names

    commands = command_names()
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKER, "-", *commands],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
