"""``glmbridge-server statusline``: one line for Claude Code's status bar, from ``/status``.

Claude Code runs the configured ``statusLine`` command after each message and pipes a JSON
object to its stdin (the model, the session, the workspace, the context window when it
knows it). On Z.ai that JSON has no ``rate_limits`` (lexfrei/claudeline PR#40), so every
statusline tool polls Z.ai's quota endpoint itself; this one asks the gateway, which
knows the model that really answered, the slots, the queue and the quota windows.

It has to be fast (Claude Code waits for it): stdlib only, one HTTP request with a short
timeout, and a line is printed whatever fails. Output, for example::

    glm-4.7 · ctx 41% · 5h 23% · slots 1/2 · queue 2
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

__all__ = ["format_line", "main"]

_TIMEOUT = 0.04  # seconds: the whole command stays within ~50 ms on loopback


def _context_percent(info: dict[str, Any]) -> float | None:
    """The context use from Claude Code's stdin JSON, if it sent one (tolerant)."""
    ctx = info.get("context_window")
    if not isinstance(ctx, dict):
        return None
    used = ctx.get("used_percentage")
    if isinstance(used, int | float) and not isinstance(used, bool):
        return float(used)
    total, size = ctx.get("total_input_tokens"), ctx.get("context_window_size")
    if isinstance(total, int) and isinstance(size, int) and size > 0:
        return 100.0 * total / size
    return None


def format_line(info: dict[str, Any], status: dict[str, Any] | None) -> str:
    """The status line for Claude Code's JSON ``info`` and the gateway's ``/status``."""
    model = info.get("model")
    name = model.get("display_name") or model.get("id") if isinstance(model, dict) else None
    parts: list[str] = []
    if status is None:
        return " · ".join([str(name or "?"), "glmbridge unreachable"])
    served = status.get("last_served")
    parts.append(str(served["model"]) if isinstance(served, dict) else str(name or "?"))
    ctx = _context_percent(info)
    if ctx is not None:
        parts.append(f"ctx {ctx:.0f}%")
    spent = [k["quota"] for k in status.get("keys", []) if isinstance(k.get("quota"), dict)]
    usage = status.get("usage") or {}
    window = (usage.get("windows") or {}).get("5h") or {}
    if spent and len(spent) == len(status.get("keys", [])):
        first = min(spent, key=lambda q: q["resets_at"])
        parts.append(f"{first['window']} spent until {first['resets_at'][11:16]} UTC")
    elif "used_percent" in window:
        parts.append(f"5h {window['used_percent']:.0f}%")
    slots = status.get("slots") or {}
    if slots.get("limit"):
        limit = slots["limit"] if slots["limit"] < 1000 else "∞"
        parts.append(f"slots {slots.get('in_use', 0)}/{limit}")
    queued = sum((status.get("queue") or {}).values())
    if queued:
        parts.append(f"queue {queued}")
    # one line whatever the names hold (model names come from clients)
    return "".join(c if c.isprintable() else "?" for c in " · ".join(parts))[:300]


def _fetch(url: str) -> dict[str, Any] | None:
    """``GET {url}/status`` over a plain socket (urllib alone takes longer to import than
    the whole budget); ``None`` on any failure."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    path = parts.path.rstrip("/") + "/status"
    headers = [f"GET {path} HTTP/1.0", f"Host: {parts.netloc}", "Accept: application/json"]
    token = os.environ.get("GLMBRIDGE_AUTH_TOKEN") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    if token:
        headers.append(f"Authorization: Bearer {token}")
    try:
        address = (parts.hostname, parts.port or 80)
        with socket.create_connection(address, timeout=_TIMEOUT) as sock:
            sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            return None
        parsed = json.loads(body)
    except (OSError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


USAGE = """\
usage: glmbridge-server statusline [--url URL]

Claude Code's status line command: reads the JSON Claude Code pipes to it on stdin and
prints one line from the gateway's /status (the model that answered, context use, quota
window, slots, queue). The gateway is --url, else $GLMBRIDGE_URL, else $ANTHROPIC_BASE_URL,
else http://127.0.0.1:4567; its token $GLMBRIDGE_AUTH_TOKEN or $ANTHROPIC_AUTH_TOKEN.
`glmbridge-server claude --statusline` sets it up; by hand, in ~/.claude/settings.json:
  {"statusLine": {"type": "command", "command": "glmbridge-server statusline"}}"""


def main(argv: list[str]) -> int:
    """Read Claude Code's JSON on stdin, print one line; always exits 0 (``--help``: the
    usage, without reading stdin)."""
    if "-h" in argv or "--help" in argv:
        print(USAGE)
        return 0
    url = argv[argv.index("--url") + 1] if "--url" in argv[:-1] else None
    url = url or os.environ.get("GLMBRIDGE_URL") or os.environ.get("ANTHROPIC_BASE_URL")
    try:
        info = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        info = {}
    status = _fetch(url or "http://127.0.0.1:4567")
    print(format_line(info if isinstance(info, dict) else {}, status))
    return 0
