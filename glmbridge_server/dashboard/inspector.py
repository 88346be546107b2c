"""The live inspector's memory: recent exchanges in a bounded ring, and a fan-out to viewers.

Theory of operation. When the inspector is on (``inspector`` setting, or one request's
``x-glmbridge-inspect: on``), each model request gets an :class:`Entry` with a summary
(:class:`Summary`, filled from the per-call record) and up to four panes of raw bytes:
``client_request`` (what the client sent), ``upstream_request`` (our translation),
``upstream_stream`` (what the upstream answered) and ``client_response`` (what the client
received). Memory is bounded three ways: each pane keeps at most ``pane_bytes`` (the rest
is counted, not kept), the ring keeps at most ``max_entries`` exchanges, and all panes
together at most ``max_bytes`` (the oldest finished exchanges go first; when only running
ones remain, new bytes are counted but not kept). Nothing is written to disk.

Secrets: captured headers are redacted when captured (:func:`redact_headers`), and every
configured secret (API keys, the auth token) is replaced by ``***`` wherever it appears in a
pane when the pane is read.

Viewers subscribe (:meth:`Inspector.subscribe`); every start and end of an exchange is put
on each subscriber's bounded queue (a slow viewer loses its oldest events, never slows a
request) and wakes it. Everything runs on the event loop; nothing here blocks.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import msgspec

__all__ = ["PANES", "Capture", "Entry", "Inspector", "Subscription", "Summary", "redact_headers"]

#: The four panes, in the order the page shows them.
PANES = ("client_request", "upstream_request", "upstream_stream", "client_response")
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "cookie",
     "set-cookie"}
)  # fmt: skip
_SUBSCRIBER_QUEUE = 256
_MAX_SUBSCRIBERS = 16


class Summary(msgspec.Struct, kw_only=True):
    """One exchange as the inspector's list shows it (no prompt text, no key)."""

    request_id: str
    started: float  # Unix time
    method: str = "POST"
    path: str = ""
    door: str | None = None
    client: str | None = None
    priority: str | None = None
    requested_model: str | None = None
    served_model: str | None = None
    upstream: str | None = None
    key_index: int | None = None
    stream: bool | None = None
    status: int | None = None
    queue_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    retries: int = 0
    fallbacks: list[str] = []
    error_kind: str | None = None
    done: bool = False


class _Pane:
    __slots__ = ("data", "size")

    def __init__(self) -> None:
        self.data = bytearray()
        self.size = 0  # everything seen, kept or not


class Entry:
    """One exchange: its summary, its panes, the headers of both requests."""

    __slots__ = ("headers", "panes", "summary")

    def __init__(self, summary: Summary) -> None:
        self.summary = summary
        self.panes: dict[str, _Pane] = {name: _Pane() for name in PANES}
        self.headers: dict[str, dict[str, str]] = {}

    @property
    def kept(self) -> int:
        """Bytes kept in memory by this entry's panes."""
        return sum(len(p.data) for p in self.panes.values())


class Capture:
    """One exchange's recording, handed to the drivers (the per-call record carries it):
    what they send upstream and what comes back go into its panes, bounded and redacted."""

    __slots__ = ("entry", "inspector")

    def __init__(self, inspector: Inspector, entry: Entry) -> None:
        self.inspector, self.entry = inspector, entry

    def upstream_request(self, method: str, url: str, headers: Iterable[tuple[str, str]],
                         body: bytes) -> None:  # fmt: skip
        """The request sent upstream (a retry or a fallback is appended after a marker)."""
        pane = self.entry.panes["upstream_request"]
        if pane.size:
            self.inspector.append(self.entry, "upstream_request", b"\n\n--- next attempt ---\n")
        shown = redact_headers(headers)
        shown[":request"] = f"{method} {url.split('?', 1)[0]}"
        self.entry.headers["upstream_request"] = shown
        self.inspector.append(self.entry, "upstream_request", body)

    def upstream_response(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """The upstream's status and headers."""
        shown = redact_headers(headers)
        shown[":status"] = str(status)
        self.entry.headers["upstream_stream"] = shown

    def upstream_bytes(self, chunk: bytes) -> None:
        """Bytes of the upstream's answer, as they arrive."""
        self.inspector.append(self.entry, "upstream_stream", chunk)


class Subscription:
    """A viewer's bounded queue of encoded events (iterate it with ``async for``)."""

    def __init__(self, inspector: Inspector) -> None:
        self._inspector = inspector
        self.queue: deque[bytes] = deque(maxlen=_SUBSCRIBER_QUEUE)
        self.event = anyio.Event()

    def push(self, event: bytes) -> None:
        self.queue.append(event)
        self.event.set()

    async def next(self, timeout: float) -> list[bytes]:
        """The events queued so far, waiting at most ``timeout`` seconds for one."""
        if not self.queue:
            with anyio.move_on_after(timeout):
                await self.event.wait()
        self.event = anyio.Event()
        events = list(self.queue)
        self.queue.clear()
        return events

    def close(self) -> None:
        """Stop receiving events."""
        self._inspector._subscribers.discard(self)


class Inspector:
    """Recent exchanges (bounded) and their viewers; see the module docstring."""

    def __init__(
        self,
        *,
        max_entries: int = 500,
        max_bytes: int = 64 * 1024 * 1024,
        pane_bytes: int = 1024 * 1024,
        secrets: Iterable[str] = (),
    ) -> None:
        self.max_entries, self.max_bytes, self.pane_bytes = max_entries, max_bytes, pane_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._kept = 0
        self._subscribers: set[Subscription] = set()
        self._secrets = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)

    # --- recording ---------------------------------------------------------------------------

    def begin(self, summary: Summary, headers: dict[str, str] | None = None) -> Entry:
        """Start recording an exchange (``headers``: the client's, already redacted)."""
        entry = Entry(summary)
        if headers is not None:
            entry.headers["client_request"] = headers
        old = self._entries.pop(summary.request_id, None)
        if old is not None:
            self._kept -= old.kept
        self._entries[summary.request_id] = entry
        self._evict()
        self._publish("start", summary)
        return entry

    def append(self, entry: Entry, pane: str, chunk: bytes) -> None:
        """Add bytes to one pane, within the pane's and the ring's limits."""
        target = entry.panes[pane]
        target.size += len(chunk)
        room = min(self.pane_bytes - len(target.data), self.max_bytes - self._kept)
        if room <= 0 or not chunk:
            return
        if room < len(chunk) and self._evict(need=len(chunk) - room, keep=entry):
            room = min(self.pane_bytes - len(target.data), self.max_bytes - self._kept)
        part = chunk[: max(0, room)]
        target.data += part
        self._kept += len(part)

    def set_headers(self, entry: Entry, pane: str, headers: dict[str, str]) -> None:
        """Headers of a pane's request or response (redacted here)."""
        entry.headers[pane] = redact_headers(headers.items())

    def finish(self, entry: Entry, summary: Summary) -> None:
        """The exchange is over: keep its final summary and tell the viewers."""
        summary.done = True
        entry.summary = summary
        self._publish("end", summary)

    def _evict(self, need: int = 0, keep: Entry | None = None) -> bool:
        """Drop the oldest finished entries past the count limit, or to free ``need`` bytes;
        whether anything was dropped."""
        dropped = False
        for rid in list(self._entries):
            over_count = len(self._entries) > self.max_entries
            over_bytes = need > 0 and self.max_bytes - self._kept < need
            if not (over_count or over_bytes):
                break
            entry = self._entries[rid]
            if entry is keep or (not entry.summary.done and not over_count):
                continue
            del self._entries[rid]
            self._kept -= entry.kept
            dropped = True
        return dropped

    # --- reading -----------------------------------------------------------------------------

    def recent(self, limit: int = 200) -> list[Summary]:
        """The newest ``limit`` summaries, newest first."""
        out: list[Summary] = []
        for entry in reversed(self._entries.values()):
            if len(out) >= limit:
                break
            out.append(entry.summary)
        return out

    def detail(self, request_id: str) -> dict[str, Any] | None:
        """One exchange with its panes as text (secrets replaced), or ``None``."""
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        panes = {
            name: {
                "text": self._redact(bytes(p.data)).decode("utf-8", "replace"),
                "size": p.size,
                "truncated": p.size > len(p.data),
                "headers": entry.headers.get(name),
            }
            for name, p in entry.panes.items()
        }
        return {"summary": entry.summary, "panes": panes}

    def _redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            data = data.replace(secret, b"***")
        return data

    def stats(self) -> dict[str, int]:
        """How much is held: entries, bytes kept, limits, viewers."""
        return {
            "entries": len(self._entries),
            "bytes": self._kept,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "viewers": len(self._subscribers),
        }

    def clear(self) -> None:
        """Forget every recorded exchange (the page's "clear" button)."""
        self._entries.clear()
        self._kept = 0

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    # --- viewers -----------------------------------------------------------------------------

    def subscribe(self) -> Subscription | None:
        """A new viewer's subscription, or ``None`` when too many watch already."""
        if len(self._subscribers) >= _MAX_SUBSCRIBERS:
            return None
        sub = Subscription(self)
        self._subscribers.add(sub)
        return sub

    def broadcast(self, event: str, data: object) -> None:
        """Send one server-sent event to every viewer."""
        if not self._subscribers:
            return
        payload = b"event: %s\ndata: %s\n\n" % (event.encode(), msgspec.json.encode(data))
        for sub in self._subscribers:
            sub.push(payload)

    def _publish(self, phase: str, summary: Summary) -> None:
        self.broadcast("exchange", {"phase": phase, "summary": summary, "at": time.time()})


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers with credentials replaced by ``***`` (names lower-cased; repeats joined)."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = "***" if key in _SECRET_HEADERS else value[:2000]
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out
