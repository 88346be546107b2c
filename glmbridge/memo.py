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

from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["IdentityMemo", "RawMemo", "RecentArrays"]

V = TypeVar("V")


class RawMemo(Generic[V]):
    """Values by the raw bytes they were decoded from (see the module docstring).

    A part that comes back at the same place (``slot``: the tool's index in its list) is
    first compared with what stood there last time: comparing equal bytes is a ``memcmp``,
    several times cheaper than the hash a dictionary lookup needs for a new bytes object.

    Args:
        max_item: longer raw values are not remembered.
        max_total: the memo starts over when its keys would exceed this many bytes.
        slots: how many places remember their last part.
    """

    __slots__ = ("_items", "_last", "_max_item", "_max_total", "_total")

    def __init__(
        self, *, max_item: int = 64 << 10, max_total: int = 8 << 20, slots: int = 256
    ) -> None:
        self._items: dict[bytes, V] = {}
        self._last: list[tuple[bytes, V] | None] = [None] * slots
        self._max_item = max_item
        self._max_total = max_total
        self._total = 0

    def get(self, raw: bytes, slot: int = -1) -> V | None:
        """The value remembered for these bytes, if any."""
        last = self._last[slot] if 0 <= slot < len(self._last) else None
        if last is not None and last[0] == raw:
            return last[1]
        value = self._items.get(raw)
        if value is not None and 0 <= slot < len(self._last):
            self._last[slot] = (raw, value)
        return value

    def put(self, raw: bytes, value: V, slot: int = -1) -> None:
        """Remember ``value`` for these bytes (last seen at ``slot``)."""
        size = len(raw)
        if size > self._max_item:
            return
        if self._total + size > self._max_total:
            self._items.clear()
            self._last = [None] * len(self._last)
            self._total = 0
        self._items[raw] = value
        self._total += size
        if 0 <= slot < len(self._last):
            self._last[slot] = (raw, value)

    def __len__(self) -> int:
        return len(self._items)


class IdentityMemo(Generic[V]):
    """Values made from a sequence of objects, by the identity of those objects (in order).

    What a :class:`RawMemo` hands back comes back as the *same* objects every turn, so
    what was made from them (an encoder's JSON for Claude Code's 24 remembered tools) is
    found again by their ids without looking at them. Each entry holds its objects, so
    their ids are not reused while it lives; the memo starts over when full. Only for
    values made from immutable objects (frozen structs), like :class:`RawMemo`.

    Args:
        max_entries: the memo starts over when it holds this many.
    """

    __slots__ = ("_items", "_max")

    def __init__(self, max_entries: int = 64) -> None:
        self._items: dict[tuple[int, ...], tuple[tuple[object, ...], V]] = {}
        self._max = max_entries

    def get(self, objects: Sequence[object]) -> V | None:
        """The value remembered for exactly these objects, if any."""
        found = self._items.get(tuple(map(id, objects)))
        return None if found is None else found[1]

    def put(self, objects: Sequence[object], value: V) -> None:
        """Remember ``value`` for these objects (held by the entry)."""
        if len(self._items) >= self._max:
            self._items.clear()
        self._items[tuple(map(id, objects))] = (tuple(objects), value)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class RecentArrays(Generic[V]):
    """What the last few whole arrays decoded to, by their bytes: an agent resends the same
    ``tools`` array every turn, and one comparison (a ``memcmp``; arrays of another length
    differ at once) then gives back the same objects, with no look at each element.

    The entries are one tuple, replaced whole, so threads that decode large bodies can
    share it. Only immutable values belong here (see the module docstring).

    Args:
        size: how many arrays are remembered (the newest first).
        max_bytes: longer arrays are not remembered.
    """

    __slots__ = ("_entries", "_max_bytes", "_size")

    def __init__(self, *, size: int = 4, max_bytes: int = 1 << 20) -> None:
        self._entries: tuple[tuple[bytes, V], ...] = ()
        self._size = size
        self._max_bytes = max_bytes

    def get(self, raw: bytes) -> V | None:
        """The value remembered for an array of exactly these bytes, if any."""
        for seen, value in self._entries:
            if seen == raw:
                return value
        return None

    def put(self, raw: bytes, value: V) -> None:
        """Remember ``value`` for these bytes (the oldest array goes beyond ``size``)."""
        if len(raw) <= self._max_bytes:
            self._entries = ((raw, value), *self._entries[: self._size - 1])

    def clear(self) -> None:
        """Forget every array."""
        self._entries = ()

    def __len__(self) -> int:
        return len(self._entries)
