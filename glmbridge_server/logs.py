"""The server's log lines: text or JSON on stderr, with every secret blanked out.

Standard library only: ``glmbridge-server statusline`` imports the CLI module, which
imports this one, and must answer within ~50 ms.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmbridge_server.settings import Settings

__all__ = [
    "JsonFormatter",
    "RedactingFormatter",
    "TextFormatter",
    "configure_logging",
    "secrets_of",
]

_STD_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured fields
    (and the process id, ``pid``, when ``process`` is set: one of several workers)."""

    def __init__(self, *, process: bool = False) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process:
            out["pid"] = record.process
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


# Every C0 control character but tab, and DEL, escaped: a client value with "\n" in it (a
# model name, a header) cannot forge a log line of its own.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != 9} | {10: "\\n", 13: "\\r"}
_NEEDS_ESCAPE = re.compile("[\x00-\x08\x0a-\x1f\x7f]").search


class TextFormatter(logging.Formatter):
    """The text log format: one line per record (tracebacks follow on their own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        # str.translate with a dict looks up (and misses) every character: ~40 instructions
        # a character, on lines that nearly always have nothing to escape.
        return line.translate(_ESCAPES) if _NEEDS_ESCAPE(line) else line


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and blanks out secrets (keys, the auth token) in every line.

    glmbridge never logs a key on purpose; this is the safety net for third-party log
    lines and for error text echoed by an upstream.
    """

    def __init__(self, inner: logging.Formatter, secrets: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(s for s in secrets if len(s) >= 4)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


def configure_logging(
    level: str, fmt: str, secrets: Sequence[str] = (), *, process: bool = False
) -> None:
    """Send all logs (glmbridge and uvicorn) to stderr in ``text`` or ``json`` format;
    ``process``: each line names the process (``name[pid]:``, or a ``pid`` field), for the
    interleaved lines of several workers."""
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter
    if fmt == "json":
        inner = JsonFormatter(process=process)
    else:
        name = "%(name)s[%(process)d]" if process else "%(name)s"
        inner = TextFormatter(f"%(asctime)s %(levelname)-7s {name}: %(message)s")
    handler.setFormatter(RedactingFormatter(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx2/httpcore debug lines include request headers (the upstream key): keep them quiet.
    for noisy in ("httpx2", "httpcore", "httpcore2", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def secrets_of(settings: Settings) -> list[str]:
    """What the logs must never show: the API keys (media keys too) and the auth token."""
    token = [settings.auth_token] if settings.auth_token else []
    return [*settings.api_keys, *token, *settings.media_api_keys]
