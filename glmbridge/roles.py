"""The roles the exchange composes: a front door and an upstream codec, and their stream halves.

Every front door (the protocol a client speaks) and every upstream codec (the protocol an
upstream speaks) meets the other only in the IR; these ``typing.Protocol`` classes are the
contract each protocol package implements (``glmbridge.protocols.<name>.door`` and
``.upstream``). They live apart from :mod:`glmbridge.exchange` so that a protocol package, the
codec registry (:mod:`glmbridge.protocols`) and :mod:`glmbridge.reasoning_gate` can name them
without importing the exchange that imports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import GlmbridgeError, UpstreamError
from glmbridge.routing import Route

__all__ = ["DoorStreamEncoder", "FrontDoor", "UpstreamCodec", "UpstreamStreamDecoder"]


class DoorStreamEncoder(Protocol):
    """IR events -> the door's stream bytes."""

    def feed(self, event: ev.Event) -> bytes: ...
    def flush(self) -> bytes: ...
    def fail(self, err: GlmbridgeError) -> bytes:
        """The bytes that end the stream with ``err`` (a transport failure)."""

    def keepalive(self) -> bytes:
        """A frame that keeps an idle stream alive (Anthropic ``ping``, an SSE comment, a
        Responses ``response.in_progress`` event: Codex's idle timer ignores comments)."""


class FrontDoor(Protocol):
    """The protocol a client speaks: requests in, answers and errors out."""

    name: str
    stream_content_type: str
    """The ``content-type`` of a streamed answer (``text/event-stream; charset=utf-8``)."""

    def decode_request(self, body: bytes) -> ir.Request: ...
    def for_request(self, req: ir.Request) -> FrontDoor:
        """This door bound to one decoded request (what its answer must echo: the
        model name, OpenAI ``include_usage``, a Responses request's settings …)."""

    def encode_response(self, resp: ir.Response) -> bytes: ...
    def stream_encoder(self) -> DoorStreamEncoder: ...
    def encode_error(
        self, err: GlmbridgeError, *, request_id: str | None = None
    ) -> tuple[int, bytes]: ...
    def error_headers(self, err: GlmbridgeError) -> dict[str, str]: ...
    def error_event(self, err: GlmbridgeError) -> bytes: ...


class UpstreamStreamDecoder(Protocol):
    """One SSE ``data:`` payload at a time -> IR events."""

    error: UpstreamError | None

    @property
    def answered(self) -> bool: ...
    def feed(self, data: bytes | str) -> list[ev.Event]: ...
    def flush(self) -> list[ev.Event]: ...


class UpstreamCodec(Protocol):
    """The protocol an upstream speaks: IR requests out, answers and errors in."""

    @property
    def path(self) -> str:
        """Appended to the profile's base URL (``/chat/completions``)."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Fixed request headers besides auth and content negotiation."""

    def encode_request(self, req: ir.Request, route: Route) -> bytes: ...
    def decode_response(self, body: bytes, *, model: str, input_estimate: int) -> ir.Response: ...
    def stream_decoder(
        self, *, model: str, message_id: str, input_tokens_estimate: int
    ) -> UpstreamStreamDecoder: ...
    def decode_error(
        self, status: int, body: bytes, *, retry_after: float | None = None
    ) -> UpstreamError: ...
