"""The simulator's HTTP surface without Starlette: the request it reads, the answers it sends.

Only :mod:`glmbridge_server.simulator.app` imports Starlette (it builds the app and its routes).
The endpoints read a request through :class:`Request` (a Protocol Starlette's request meets) and
answer with plain ASGI callables (:class:`Reply`, :class:`SSEStream`, :class:`PartialBody`),
which a Starlette route sends as they are.
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio
import anyio.lowlevel
import msgspec

from glmbridge_server.asgi_types import ASGIApp, Message, Receive, RequestView, Scope, Send

__all__ = [
    "ASGIApp",
    "Message",
    "PartialBody",
    "Receive",
    "Reply",
    "Request",
    "SSEStream",
    "Scope",
    "Send",
    "gave_up",
    "json_reply",
    "wait_unless_disconnected",
]


class _URL(Protocol):
    @property
    def path(self) -> str: ...


class Request(RequestView, Protocol):
    """What an endpoint reads of a request (``starlette.requests.Request`` has it all)."""

    @property
    def app(self) -> Any: ...
    @property
    def method(self) -> str: ...
    @property
    def url(self) -> _URL: ...
    async def body(self) -> bytes: ...


class Reply:
    """A whole answer: status, body and content type (JSON unless told; ``None``: none)."""

    __slots__ = ("body", "media_type", "status")

    def __init__(
        self, body: bytes = b"", status: int = 200, media_type: str | None = "application/json"
    ) -> None:
        self.body, self.status, self.media_type = body, status, media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode())]
        if self.media_type:
            headers.append((b"content-type", self.media_type.encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_reply(data: Any, status: int = 200) -> Reply:
    """``data`` encoded as JSON."""
    return Reply(msgspec.json.encode(data), status)


def gave_up() -> Reply:
    """499, no body: the caller left while the "model" was still busy."""
    return Reply(status=499, media_type=None)


class SSEStream:
    """Pre-encoded server-sent events, ``delay`` seconds apart; counts client disconnects on
    ``state`` (``active_streams``, ``cancelled``)."""

    def __init__(self, state: Any, chunks: list[bytes], delay: float) -> None:
        self.state, self.chunks, self.delay = state, chunks, delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self.state
        st.active_streams += 1
        done = False
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:  # a disconnect cancels the producer at once
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream;charset=UTF-8"),
                            (b"cache-control", b"no-cache"),
                        ],
                    }
                )
                for i, chunk in enumerate(self.chunks):
                    if i and self.delay > 0:
                        await anyio.sleep(self.delay)
                    elif i % 64 == 63:
                        await anyio.lowlevel.checkpoint()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:  # servers raise OSError subclasses on send to a vanished client
            pass
        finally:
            st.active_streams -= 1
            if not done:
                st.cancelled += 1


class PartialBody:
    """Half a JSON body, then the end: a dropped non-streamed connection."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2]})


async def wait_unless_disconnected(request: Request, seconds: float) -> bool:
    """Sleep ``seconds``; ``False`` as soon as the client disconnects instead."""
    gone = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal gone
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone = True
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        await anyio.sleep(seconds)
        tg.cancel_scope.cancel()
    return not gone
