"""A user's model factory named as text: `pkg.module:build`, or a file's path and `:build`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minicluster.core.errors import ConfigError

FIELD = "workload.factory"


@dataclass(frozen=True)
class FactorySpec:
    """Where the factory is: `target` a module name or a file path (`is_file`), and the name of
    the function in it."""

    target: str
    function: str
    is_file: bool

    def __str__(self) -> str:
        return f"{self.target}:{self.function}"

    def absolute(self, base: Path) -> FactorySpec:
        """This spec with a relative file path made absolute against `base` (a module name, or an
        absolute path, is returned as it is): ranks started elsewhere (Ray, another node) find
        the same file."""
        if not self.is_file or Path(self.target).is_absolute():
            return self
        return FactorySpec(str((base / self.target).resolve()), self.function, True)


def parse(text: object) -> FactorySpec:
    """`text` as a FactorySpec; ConfigError naming the field and the accepted forms."""
    forms = "give 'pkg.module:build' or 'path/to/file.py:build'"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{FIELD} is required for workload.name custom; {forms}")
    target, sep, function = text.strip().rpartition(":")
    if not sep or not target or not function:
        raise ConfigError(f"{FIELD} is {text!r}: no ':function'; {forms}")
    if not function.isidentifier():
        raise ConfigError(f"{FIELD} is {text!r}: {function!r} is not a Python function name")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    if not is_file and not all(part.isidentifier() for part in target.split(".")):
        raise ConfigError(
            f"{FIELD} is {text!r}: {target!r} is neither a module name nor a .py file"
        )
    return FactorySpec(target, function, is_file)
