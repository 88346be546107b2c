"""The Anthropic Messages front door (``POST /v1/messages``), as the exchange sees it."""

from __future__ import annotations

from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.protocols.anthropic.errors import encode_error, error_event, error_headers
from glmbridge.protocols.anthropic.request import decode_request
from glmbridge.protocols.anthropic.response import encode_response
from glmbridge.protocols.anthropic.stream import StreamEncoder

__all__ = ["DOOR", "AnthropicDoor"]


class AnthropicDoor:
    """Implements :class:`glmbridge.exchange.FrontDoor` for Anthropic Messages clients."""

    name = "anthropic"
    stream_content_type = "text/event-stream; charset=utf-8"

    def decode_request(self, body: bytes) -> ir.Request:
        """See :func:`glmbridge.protocols.anthropic.decode_request`."""
        return decode_request(body)

    def for_request(self, req: ir.Request) -> AnthropicDoor:
        """The door itself: an Anthropic answer needs nothing from the request."""
        return self

    def encode_response(self, resp: ir.Response) -> bytes:
        """A ``Message`` body."""
        return encode_response(resp)

    def stream_encoder(self) -> StreamEncoder:
        """A fresh SSE encoder."""
        return StreamEncoder()

    def encode_error(
        self, err: GlmbridgeError, *, request_id: str | None = None
    ) -> tuple[int, bytes]:
        """``(status, body)`` in Anthropic's error shape."""
        return encode_error(err, request_id=request_id)

    def error_headers(self, err: GlmbridgeError) -> dict[str, str]:
        """The SDKs' retry hints (``retry-after``, ``x-should-retry``)."""
        return error_headers(err)

    def error_event(self, err: GlmbridgeError) -> bytes:
        """An SSE ``error`` event."""
        return error_event(err)


DOOR = AnthropicDoor()
