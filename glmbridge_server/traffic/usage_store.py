"""The usage store: one SQLite row per model request, written off the event loop.

Theory of operation. The request path only calls :meth:`UsageStore.record`, which puts a
tuple on a bounded in-memory queue and returns; it never touches the database, never
blocks and never raises; it clamps every value to its column first (:func:`clean_row`).
One writer thread owns the connection (WAL journal, a busy timeout), inserts in
batches, and deletes rows older than ``retention_days`` at start and then once a day. A
full queue, a full disk or a locked database loses rows, never a request; a row SQLite
refuses loses only itself (the batch is retried row by row), and no failure stops the
writer. Each lost row is counted, exactly (:meth:`UsageStore.stats`, shown in ``/status``
and ``/metrics``), and logged (at most once a minute). Readers (``/status``,
``glmbridge-server usage``) open their own connections; WAL lets them read while the
writer writes.

Several processes may write one file (``workers`` > 1, or several servers on one data
dir): each has its own writer thread; WAL lets them take turns, the busy timeout
(:data:`_BUSY`) waits out another writer's transaction, a batch that still finds the file
locked is tried again (:data:`_LOCKED_TRIES` times) before its rows count as lost, and a
column added by a newer version is added once whichever process opens the file first.

Rows hold no prompt and no key: the key is identified by :func:`key_id` (a short hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec

__all__ = [
    "UsageRow",
    "UsageStore",
    "clean_row",
    "default_data_dir",
    "key_id",
    "open_readonly",
]

logger = logging.getLogger("glmbridge.usage")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    ts REAL NOT NULL,
    client TEXT, route TEXT, key_id TEXT, model TEXT, client_model TEXT, upstream TEXT,
    input_tokens INTEGER, cached_tokens INTEGER, output_tokens INTEGER,
    latency_ms REAL, ttft_ms REAL, status INTEGER, fallback TEXT, priority TEXT,
    queue_wait_ms REAL, peak INTEGER, served_model TEXT, error_kind TEXT, cost_usd REAL
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
"""
_QUEUE = 10_000
_LINGER = 0.25  # seconds between two batches
_BATCH = 500
_DAY = 86_400.0
_BUSY = 5.0  # seconds a write waits for another writer (process) to finish its transaction
_LOCKED_TRIES = 3


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/glmbridge``, else ``~/.local/share/glmbridge``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "glmbridge"


def key_id(key: str) -> str:
    """A stable, non-reversible id for an API key (12 hex digits of BLAKE2b)."""
    return hashlib.blake2b(key.encode(), digest_size=6, person=b"glmbridge").hexdigest()


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One request (column order = the table's)."""

    ts: float
    client: str
    route: str
    key_id: str | None
    model: str | None
    client_model: str | None
    upstream: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    latency_ms: float
    ttft_ms: float | None
    status: int
    fallback: str | None
    priority: str | None
    queue_wait_ms: float | None
    peak: bool
    # the model the upstream's answer named (the Coding Plan answers legacy ids with
    # another one); last, as ALTER TABLE adds it to older files
    served_model: str | None = None
    #: The error the client was answered with (``rate_limit_error``, …), if any; after
    #: ``served_model`` for the same reason.
    error_kind: str | None = None
    #: What the row cost in US dollars where a price is known per call (a generated image);
    #: model calls are counted in tokens and plan credits instead. Last, likewise.
    cost_usd: float | None = None


_INT_MAX = 2**63 - 1  # SQLite's INTEGER
_TEXT_MAX = 200
_MS_MAX = 1e12  # about 30 years
# Errors that one row causes (a value SQLite cannot bind or store), not the database.
_ROW_ERRORS = (OverflowError, ValueError, TypeError, sqlite3.InterfaceError,
               sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)  # fmt: skip


def _count(value: object) -> int:
    """A token count or status: an integer in ``[0, 2**63 - 1]`` (0 when not a number)."""
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) else 0
    return min(max(value, 0), _INT_MAX) if isinstance(value, int) else 0


def _ms(value: object) -> float | None:
    """A duration in ms: finite, in ``[0, 1e12]``; ``None`` when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return min(max(number, 0.0), _MS_MAX) if math.isfinite(number) else None


def _text(value: object) -> str | None:
    return value[:_TEXT_MAX] if isinstance(value, str) else None


def _name(value: object) -> str:
    return _text(value) or "?"


def _latency(value: object) -> float:
    return _ms(value) or 0.0


def _ts(value: object) -> float:
    return value if isinstance(value, float) and math.isfinite(value) else time.time()


# How each column is made safe: by its declared type, except the few with a default.
_BY_TYPE: dict[str, Callable[[object], object]] = {
    "str | None": _text, "int": _count, "float | None": _ms, "bool": bool,
}  # fmt: skip
_BY_NAME: dict[str, Callable[[object], object]] = {
    "ts": _ts, "client": _name, "route": _name, "latency_ms": _latency,
}  # fmt: skip
_CLEANERS = tuple((f.name, _BY_NAME.get(f.name) or _BY_TYPE[str(f.type)]) for f in fields(UsageRow))

# What each cleaner leaves unchanged, as a type msgspec checks at C speed: a row whose values
# all pass is already clean (nearly every row), and only the others take the cleaners'
# Python path (7 us a row, 2.5% of a Claude Code turn's instructions, issue 22). Each type
# is a subset of what its cleaner returns as given (strict: no bool for int, no int for a
# timestamp), so the check never lets through a value a cleaner would change.
_Text = Annotated[str, msgspec.Meta(max_length=_TEXT_MAX)]
_Ms = Annotated[float, msgspec.Meta(ge=0, le=_MS_MAX)]
_AS_IS_BY_TYPE: dict[Callable[[object], object], object] = {
    _text: _Text | None,
    _count: Annotated[int, msgspec.Meta(ge=0, le=_INT_MAX)],
    _ms: _Ms | None,
    bool: bool,
    _ts: Annotated[float, msgspec.Meta(ge=0, le=_MS_MAX)],
    _name: Annotated[str, msgspec.Meta(min_length=1, max_length=_TEXT_MAX)],
    _latency: _Ms,
}
_AS_IS = msgspec.defstruct(
    "_AsIs", [(name, _AS_IS_BY_TYPE[clean]) for name, clean in _CLEANERS], array_like=True
)


def clean_row(row: UsageRow) -> UsageRow:
    """``row`` with every value of its column's type and within SQLite's range: counts
    clamped to ``[0, 2**63 - 1]`` (an upstream once reported 2**63 tokens), durations finite,
    text at most 200 characters. Called on the request path: cheap, and total."""
    values: list[Any] = [clean(getattr(row, name)) for name, clean in _CLEANERS]
    return UsageRow(*values)


_INSERT = f"INSERT INTO usage VALUES ({', '.join('?' for _ in fields(UsageRow))})"
# A row's values in column order (dataclasses.astuple deep-copies every value: 14 us a row,
# half of what a usage row cost the server, issue 22).
_VALUES = attrgetter(*(f.name for f in fields(UsageRow)))


def _clean_values(row: UsageRow) -> tuple[Any, ...]:
    """``row``'s values in column order, made safe (:func:`clean_row`)."""
    values = _VALUES(row)
    try:
        msgspec.convert(values, _AS_IS)  # the usual row: clean already
    except msgspec.ValidationError:
        return _VALUES(clean_row(row))
    return values


def _connect(path: Path, *, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
    # Columns a file from an older version lacks, in the order they were added.
    for name, kind in (("served_model", "TEXT"), ("error_kind", "TEXT"), ("cost_usd", "REAL")):
        if name not in columns:
            try:
                conn.execute(f"ALTER TABLE usage ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection for reading summaries (the schema is created if the file is new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _connect(path, timeout=1.0)


class UsageStore:
    """Records usage rows in ``path`` from a writer thread (see the module docstring)."""

    def __init__(self, path: Path, *, retention_days: float = 90.0) -> None:
        self.path = path
        self.retention = retention_days * _DAY
        self.lost = 0
        self.written = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(_QUEUE)
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="glmbridge-usage", daemon=True)
        self._thread.start()

    def record(self, row: UsageRow) -> None:
        """Queue ``row`` for writing (its values made safe first: :func:`clean_row`); never
        blocks, never raises."""
        if not self._thread.is_alive():  # never expected; counted rather than piled up
            self._lose(1, "the writer thread has stopped")
            return
        try:
            self._queue.put_nowait(_clean_values(row))
        except queue.Full:
            self._lose(1, "the write queue is full")
        except Exception as exc:  # a value clean_row cannot read
            self._lose(1, f"a bad row ({type(exc).__name__})")

    @property
    def queued(self) -> int:
        """Rows waiting for the writer."""
        return self._queue.qsize()

    def stats(self) -> dict[str, int]:
        """``{written, lost, queued}`` since start (``/status``, ``/metrics``)."""
        return {"written": self.written, "lost": self.lost, "queued": self.queued}

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued row has been handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _lose(self, count: int, why: str) -> None:
        self.lost += count
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            logger.warning("usage store: %d row(s) lost so far (%s)", self.lost, why)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        next_cleanup = 0.0
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [r for r in batch if r is not None]
            written, lost = self.written, self.lost
            try:
                if conn is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = _connect(self.path, timeout=_BUSY)
                if rows:
                    self._store(conn, rows)
                if time.time() >= next_cleanup:
                    self._cleanup(conn)
                    next_cleanup = time.time() + _DAY
            except Exception as exc:  # the database failed (full, locked, corrupt, gone)
                # exactly the rows of this batch neither written nor already counted
                self._lose(len(rows) - (self.written - written) - (self.lost - lost),
                           f"{type(exc).__name__}: {exc}")  # fmt: skip
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(rows) < len(batch):  # close() was called
                if conn is not None:
                    conn.close()
                return
            # Let rows gather before the next batch: the request path's put() then finds no
            # thread waiting, so a busy server wakes this thread (and hands it the GIL) a few
            # times a second instead of once per request (issue 22).
            time.sleep(_LINGER)

    def _store(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows``; when SQLite refuses one, write them one by one and lose only
        the bad ones. A failure of the database itself propagates."""
        try:
            self._write_locked(conn, rows)
            return
        except _ROW_ERRORS:
            pass
        for row in rows:
            try:
                self._write(conn, [row])
            except _ROW_ERRORS as exc:
                self._lose(1, f"a bad row ({type(exc).__name__}: {exc})")

    def _write_locked(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        """:meth:`_write`, tried again while another process holds the file past the busy
        timeout (its rows are not lost to a long transaction elsewhere)."""
        for attempt in range(_LOCKED_TRIES):
            try:
                self._write(conn, rows)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == _LOCKED_TRIES - 1:
                    raise
                time.sleep(_LINGER)

    def _write(self, conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
        data = list(rows)
        with conn:
            conn.executemany(_INSERT, data)
        self.written += len(data)

    def _cleanup(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("DELETE FROM usage WHERE ts < ?", (time.time() - self.retention,))
