"""The terminal lines of isolation by group testing: each round's groups and what was slow, then
the verdict (renders the result's `isolate` block, never computes)."""

from __future__ import annotations

from typing import Any


def round_lines(block: dict[str, Any]) -> list[str]:
    """One line per round: its groups (role, units, busbw, % of baseline), slow ones marked."""
    out = []
    for rnd in block.get("rounds", []):
        parts = []
        for g in rnd["groups"]:
            bw = g.get("busbw_gbps")
            ratio = g.get("ratio")
            shown = "not measured" if bw is None else f"{bw:.3g} GB/s"
            if ratio is not None:
                shown += f" ({ratio:.0%})"
            if g.get("llr") is not None:
                shown += f" evidence {g['llr']:+.1f}"
            mark = " SLOW" if g.get("slow") else ""
            parts.append(f"{g['role']} [{', '.join(g['names'])}] {shown}{mark}")
        out.append(f"round {rnd['round']}: " + "; ".join(parts))
    return out


def unit_lines(block: dict[str, Any]) -> list[str]:
    """Per unit that is not cleared: its status and why."""
    return [
        f"{u['name']}: {u['status']}: {u['why']}"
        for u in block.get("units", [])
        if u["status"] != "cleared"
    ]


def text(block: dict[str, Any]) -> str:
    """The rounds, the units that are not cleared, and the verdict line."""
    return "\n".join([*round_lines(block), *unit_lines(block), block["verdict"]])
