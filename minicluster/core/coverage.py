"""What a number covers (how many requests or energy sources), so a comparison can refuse to set
a number over fewer requests or devices beside one over more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Coverage:
    """What a number covers: `covered` of `total` requests or energy sources (`items` names them).

    A latency over the 40 requests that completed of 100 sent, or an energy summed over one of
    two GPUs, covers less than its counterpart and is not compared with it.
    """

    what: Literal["requests", "energy sources"]
    covered: int
    total: int
    items: tuple[str, ...] = ()

    @property
    def fraction(self) -> float:
        return self.covered / self.total if self.total else 0.0

    def describe(self) -> str:
        named = f" ({', '.join(self.items)})" if self.items else ""
        return f"{self.covered} of {self.total} {self.what}{named}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "covered": self.covered,
            "total": self.total,
            "items": list(self.items),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Coverage:
        """ValueError for a malformed `{what, covered, total, items}`."""
        what, covered, total = d.get("what"), d.get("covered"), d.get("total")
        if what not in ("requests", "energy sources"):
            raise ValueError(f"coverage: unknown 'what' {what!r}")
        if not (_count(covered) and _count(total)):
            raise ValueError(f"coverage: counts must be whole numbers >= 0, got {d!r}")
        assert isinstance(covered, int) and isinstance(total, int)
        items = d.get("items") or []
        if not isinstance(items, list):
            raise ValueError("coverage: items must be a list")
        return cls(what, covered, total, tuple(str(i) for i in items))


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
