"""The ASGI interface as the drivers see it: plain types (no web framework), and the one
whole (non-streamed) answer.

A driver's answer is an ASGI callable: the edge's routes return it and the framework calls
it with the connection's ``scope``, ``receive`` and ``send``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from glmbridge_server.asgi_types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ASGIApp",
    "Answer",
    "HttpMiddleware",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "WholeAnswer",
]


class Answer(Protocol):
    """What a driver returns: an ASGI application for one response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class WholeAnswer:
    """A complete answer: a status, a JSON (or ``media_type``) body and extra raw headers."""

    __slots__ = ("body", "headers", "media_type", "status_code")

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        headers: Sequence[tuple[bytes, bytes]] = (),
        media_type: str | None = "application/json",
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.headers = list(headers)
        self.media_type = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-length", b"%d" % len(self.body))]
        if self.media_type is not None:
            raw.append((b"content-type", self.media_type.encode("latin-1")))
        raw += self.headers
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


class HttpMiddleware:
    """A pure-ASGI middleware for HTTP requests (others pass through): subclasses implement
    :meth:`handle`. (A ``BaseHTTPMiddleware`` would buffer streamed responses.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request."""
        raise NotImplementedError
