"""What the node check reads from the host besides its devices: NVIDIA XID lines of the kernel
log, InfiniBand ports from sysfs, and `dcgmi diag` when DCGM is installed. Raw text and numbers
only; `analysis.nodecheck_rules` judges them. No torch."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

KMSG = Path("/dev/kmsg")
INFINIBAND = Path("/sys/class/infiniband")
XID_MARK = "NVRM: Xid"
MAX_XID_LINES = 200
# Per port, the sysfs error counters an InfiniBand health check reads (IBTA PortCounters).
IB_COUNTERS = (
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_xmit_discards",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
)
# `dcgmi diag -r LEVEL` time limits: r1 takes seconds, r2 about 2 minutes, r3 about 15 (NVIDIA's
# DCGM diagnostics guide), with room for a loaded node.
DCGM_TIMEOUT_S = {1: 120, 2: 600, 3: 2400}


def kernel_log_xids(path: Path = KMSG) -> dict[str, Any]:
    """The kernel log lines that report an NVIDIA XID (the newest `MAX_XID_LINES`), or why the
    log could not be read (`kernel.dmesg_restrict` = 1 needs root or CAP_SYSLOG)."""
    try:
        text = _read_log(path)
    except PermissionError as e:
        return {"readable": False, "lines": [], "reason": f"{path}: {e.strerror}{_restrict()}"}
    except OSError as e:
        return {"readable": False, "lines": [], "reason": f"{path}: {e.strerror or e}"}
    lines = [ln.split(";", 1)[-1] for ln in text.splitlines() if XID_MARK in ln]
    return {"readable": True, "lines": lines[-MAX_XID_LINES:], "reason": None, "source": str(path)}


def _read_log(path: Path) -> str:
    """The whole log: /dev/kmsg hands out one record per read and EAGAIN at its end (opened
    non-blocking); a plain file (a saved log, a test's) reads at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                raise
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
    return b"\n".join(c.rstrip(b"\n") for c in chunks).decode(errors="replace")


def _restrict() -> str:
    try:
        value = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip()
    except OSError:
        return ""
    return f" (kernel.dmesg_restrict = {value}: needs root or CAP_SYSLOG)" if value == "1" else ""


def infiniband(root: Path = INFINIBAND) -> dict[str, Any]:
    """Every InfiniBand/RoCE port under `root`: state, physical state, rate, link layer and error
    counters; `present` False with the reason when there is no such directory or no device."""
    if not root.is_dir():
        return {
            "present": False,
            "ports": [],
            "reason": f"{root} does not exist: no RDMA driver loaded, or no InfiniBand/RoCE adapter",
        }
    ports = []
    for dev in sorted(p for p in root.iterdir()):
        for port in sorted((dev / "ports").glob("*"), key=lambda p: p.name):
            entry: dict[str, Any] = {"device": dev.name, "port": port.name}
            for key in ("state", "phys_state", "rate", "link_layer"):
                entry[key] = _text(port / key)
            counters: dict[str, int | None] = {}
            for name in IB_COUNTERS:
                raw = _text(port / "counters" / name)
                counters[name] = int(raw) if raw is not None and raw.isdigit() else None
            entry["counters"] = counters
            ports.append(entry)
    if not ports:
        return {"present": False, "ports": [], "reason": f"{root} lists no device with a port"}
    return {"present": True, "ports": ports, "reason": None}


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def dcgm_diag(level: int, timeout_s: float | None = None) -> dict[str, Any]:
    """`dcgmi diag -r LEVEL -j`: its JSON (parsed) and exit status, or why it did not run."""
    exe = shutil.which("dcgmi")
    if exe is None:
        return {"ran": False, "reason": "DCGM is not installed (no dcgmi on PATH)"}
    limit = timeout_s or DCGM_TIMEOUT_S.get(level, 600)
    cmd = [exe, "diag", "-r", str(level), "-j"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return {"ran": False, "reason": f"{' '.join(cmd)} did not finish in {limit:g} s"}
    except OSError as e:
        return {"ran": False, "reason": f"{' '.join(cmd)} could not start: {e.strerror or e}"}
    out = proc.stdout
    start = out.find("{")  # dcgmi may print a warning line before the document
    try:
        doc = json.loads(out[start:]) if start >= 0 else None
    except ValueError:
        doc = None
    return {
        "ran": True,
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "json": doc,
        "stderr": proc.stderr.strip()[-2000:],
        "reason": None if doc is not None else "dcgmi printed no JSON document",
    }


def dcgm_available() -> bool:
    return shutil.which("dcgmi") is not None
