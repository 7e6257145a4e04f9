"""minicluster: a distributed-training validation harness.

`minicluster.load(PATH)` reads any result (run or sweep directory, result.json, TrackIQ, vLLM or
markdown report) as pandas DataFrames: `.metrics`, `.ranks`, `.nodes`, `.steps`, `.scaling`;
`.result` is the canonical result as the typed model and `.raw` its JSON. pandas is imported only
then.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from minicluster.core.version import __version__

if TYPE_CHECKING:
    from minicluster.interop.frames import Result

__all__ = ["__version__", "load"]


def load(path: str | os.PathLike[str], fmt: str | None = None) -> Result:
    """`path` as a `Result` of pandas DataFrames (see `minicluster.interop.frames.Result`).

    `fmt` forces a format (minicluster, trackiq, vllm, markdown); by default it is detected.
    Raises `minicluster.core.errors.InputError` for a file that cannot be read as one.
    """
    from pathlib import Path

    from minicluster.interop.frames import load as load_frames

    return load_frames(Path(path), fmt)
