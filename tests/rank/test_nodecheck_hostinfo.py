"""What the node check reads from the host and how it is judged: XIDs in the kernel log (a file in
/dev/kmsg's format), InfiniBand ports (a sysfs tree), `dcgmi diag -j` (DCGM's own recorded
document, and a failing variant), and an absent InfiniBand or DCGM said as such."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from minicluster.analysis import nodecheck_rules as rules
from minicluster.rank.nodecheck import hostinfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nodecheck"


def test_xid_lines_of_the_kernel_log_are_read_and_judged() -> None:
    log = hostinfo.kernel_log_xids(FIXTURES / "kmsg_xid.txt")
    assert log["readable"] and len(log["lines"]) == 2
    assert log["lines"][1].startswith("NVRM: Xid (PCI:0000:18:00): 79, pid=1234")
    c = rules.xid({"kernel_log": log, "nvml": None}, has_gpu=True)
    assert c is not None and c["verdict"] == "failed"  # XID 79 outweighs the application's 31
    assert "XID 79 on 0000:18:00 (GPU has fallen off the bus, kernel log)" in c["reason"]
    assert "XID 31 on 0000:03:00 (GPU memory page fault (an application fault)" in c["reason"]
    assert c["remediation"] == "XID 79: drain, reboot; reseat; RMA candidate if it recurs"


def test_an_unreadable_kernel_log_says_why(tmp_path: Path) -> None:
    log = hostinfo.kernel_log_xids(tmp_path / "nope")
    assert not log["readable"] and "No such file" in log["reason"]
    c = rules.xid({"kernel_log": log, "nvml": None}, has_gpu=True)
    assert c is not None and c["verdict"] == "incomplete" and "No such file" in c["reason"]
    assert rules.xid({"kernel_log": log, "nvml": None}, has_gpu=False) is None


def test_no_infiniband_is_said_as_such(tmp_path: Path) -> None:
    ib = hostinfo.infiniband(tmp_path / "infiniband")
    assert ib["present"] is False and "does not exist" in ib["reason"]
    [c] = rules.infiniband(ib)
    assert c["verdict"] == "incomplete" and c["reason"].startswith("no InfiniBand to check:")


def _port(root: Path, dev: str, state: str, phys: str, **counters: int) -> None:
    port = root / dev / "ports" / "1"
    (port / "counters").mkdir(parents=True)
    (port / "state").write_text(f"{state}\n")
    (port / "phys_state").write_text(f"{phys}\n")
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    (port / "link_layer").write_text("InfiniBand\n")
    for name in hostinfo.IB_COUNTERS:
        (port / "counters" / name).write_text(f"{counters.get(name, 0)}\n")


def test_infiniband_ports_down_or_flapping(tmp_path: Path) -> None:
    root = tmp_path / "infiniband"
    _port(root, "mlx5_0", "4: ACTIVE", "5: LinkUp")
    _port(root, "mlx5_1", "1: DOWN", "3: Disabled")
    _port(root, "mlx5_2", "4: ACTIVE", "5: LinkUp", link_downed=3, symbol_error=12)
    checks = {c["device"]: c for c in rules.infiniband(hostinfo.infiniband(root))}
    assert checks["mlx5_0/1"]["verdict"] == "ok"
    assert checks["mlx5_1/1"]["verdict"] == "failed"
    assert checks["mlx5_1/1"]["reason"] == "port mlx5_1/1 is DOWN (physical 3: Disabled)"
    assert checks["mlx5_2/1"]["verdict"] == "degraded"
    assert "symbol_error 12, link_downed 3" in checks["mlx5_2/1"]["reason"]


def test_no_dcgm_is_incomplete() -> None:
    c = rules.dcgm({"ran": False, "reason": "DCGM is not installed (no dcgmi on PATH)"})
    assert c is not None and c["verdict"] == "incomplete"


def _dcgm(doc: dict, code: int = 0) -> dict:
    return {"ran": True, "command": "dcgmi diag -r 1 -j", "returncode": code, "json": doc}


def test_dcgm_diag_document_passes() -> None:
    doc = json.loads((FIXTURES / "dcgm_diag_r1_3.1.0.json").read_text())
    c = rules.dcgm(_dcgm(doc))
    assert c is not None and c["verdict"] == "ok"
    assert c["reason"] == "dcgmi diag: 17 result(s) pass or skip"


def test_dcgm_diag_failure_names_the_test_and_its_warning() -> None:
    doc = copy.deepcopy(json.loads((FIXTURES / "dcgm_diag_r1_3.1.0.json").read_text()))
    software = doc["DCGM GPU Diagnostic"]["test_categories"][1]["tests"][0]
    software["results"][3] = {
        "gpu_ids": 3,
        "status": "FAIL",
        "warnings": ["Persistence mode for GPU 3 is disabled."],
    }
    c = rules.dcgm(_dcgm(doc, code=226))
    assert c is not None and c["verdict"] == "failed"
    assert c["reason"] == (
        "dcgmi diag failed: software (gpu 3): Persistence mode for GPU 3 is disabled."
    )


def test_dcgm_without_a_document_is_incomplete() -> None:
    c = rules.dcgm(
        {
            "ran": True,
            "command": "dcgmi diag -r 1 -j",
            "returncode": 1,
            "json": None,
            "reason": "dcgmi printed no JSON document",
            "stderr": "Error: host engine",
        }
    )
    assert c is not None and c["verdict"] == "incomplete"
    assert "exit 1" in c["reason"]
