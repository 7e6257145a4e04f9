"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never half of one.

    An OSError names `path` (`e.filename`) even where the failing call had no file name (a
    write that found the disk full)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(e: OSError, path: Path) -> OSError:
    """`e` with `path` as its file name (an OSError of the same subclass and errno)."""
    if e.filename is not None or e.errno is None:
        return e
    return type(e)(e.errno, e.strerror, str(path))


def probe_writable_dir(folder: Path) -> None:
    """Make `folder` (and its parents) and check a file can be created in it, as an atomic write
    there would; OSError when not."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".minicluster-write-test-")
    os.close(fd)
    os.unlink(probe)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, dumps_indented(data) + "\n")


# what `json.dumps` escapes that orjson writes as it is: DEL and every non-ASCII character
_UNESCAPED = re.compile(r"[^\x00-\x7e]")


def dumps_indented(data: Any) -> str:
    """`json.dumps(data, indent=2, allow_nan=False)`, byte for byte, with C encoders: CPython's
    encoder with an indent is its pure-Python one (0.2 s of CPU for a 4,096-rank result).
    The compact text of the C encoder (which raises as `json.dumps` does: NaN, a value it cannot
    encode) is compared with orjson's; when they are the same (the same keys, strings and number
    texts), orjson's indented text (the same layout: two spaces, `": "`, `[]`/`{}` when empty)
    with DEL and non-ASCII characters escaped as `json.dumps` does is that text. When they differ
    (orjson writes some floats otherwise, e.g. 1e-05 as 0.00001, and refuses a key that is not
    a string or an integer beyond 64 bits), `json.dumps` itself."""
    compact = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    try:
        import orjson

        same = orjson.dumps(data) == compact.encode("utf-8")
    except (ImportError, TypeError):  # no orjson; a value or key orjson does not encode
        same = False
    if not same:
        return json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode("utf-8")
    return text if text.isascii() and "\x7f" not in text else _UNESCAPED.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    """A character as `json.dumps` escapes it: \\uXXXX, a surrogate pair above the BMP."""
    n = ord(m.group())
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 | (n >> 10):04x}\\u{0xDC00 | (n & 0x3FF):04x}"
