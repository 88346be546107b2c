"""A bounded memo of values decoded from raw JSON, keyed by the raw bytes themselves.

Agents resend the same parts of a request on every turn: Claude Code's 24 tool
definitions are 83% of its 76 KB first request, byte for byte the same each time. A
decoder that remembers what it made of such a part decodes it once; every later request
pays a hash of its bytes instead of a decode, and gets back the *same* (immutable)
objects, whose strings already carry their hash and UTF-8 form: the token estimator's memo
and the upstream encoder find them ready too (issue 22).

Only immutable values belong here (frozen structs holding no mutable containers), since
every request that sends the same bytes shares them. The memo is bounded in total bytes
and simply starts over when full. Safe to share between threads (each step is one
dictionary operation).
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["RawMemo"]

V = TypeVar("V")


class RawMemo(Generic[V]):
    """Values by the raw bytes they were decoded from (see the module docstring).

    Args:
        max_item: longer raw values are not remembered.
        max_total: the memo starts over when its keys would exceed this many bytes.
    """

    __slots__ = ("_items", "_max_item", "_max_total", "_total")

    def __init__(self, *, max_item: int = 64 << 10, max_total: int = 8 << 20) -> None:
        self._items: dict[bytes, V] = {}
        self._max_item = max_item
        self._max_total = max_total
        self._total = 0

    def get(self, raw: bytes) -> V | None:
        """The value remembered for these bytes, if any."""
        return self._items.get(raw)

    def put(self, raw: bytes, value: V) -> None:
        """Remember ``value`` for these bytes."""
        size = len(raw)
        if size > self._max_item:
            return
        if self._total + size > self._max_total:
            self._items.clear()
            self._total = 0
        self._items[raw] = value
        self._total += size

    def __len__(self) -> int:
        return len(self._items)
