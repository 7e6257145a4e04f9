"""Logging set-up: one formatter that prefixes the rank, console output from one rank only."""

from __future__ import annotations

import logging
import sys

_FORMAT = "[minicluster%s] %%(levelname)s %%(message)s"


class _RankFilter(logging.Filter):
    """Drops INFO/DEBUG records on ranks other than the console rank."""

    def __init__(self, rank: int | None, console_rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.console_rank = console_rank

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rank is None or self.rank == self.console_rank:
            return True
        return record.levelno >= logging.WARNING


def setup_logging(
    rank: int | None = None, level: int = logging.INFO, console_rank: int = 0
) -> None:
    """Configure the `minicluster` logger: `[minicluster r3] LEVEL message` on stderr."""
    logger = logging.getLogger("minicluster")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    prefix = f" r{rank}" if rank is not None else ""
    handler.setFormatter(logging.Formatter(_FORMAT % prefix))
    handler.addFilter(_RankFilter(rank, console_rank))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
