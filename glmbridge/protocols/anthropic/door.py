"""The Anthropic Messages front door (``POST /v1/messages``), as the exchange sees it."""

from __future__ import annotations

from glmbridge import ir
from glmbridge.protocols.anthropic.door_request import decode_request
from glmbridge.protocols.anthropic.door_response import encode_response
from glmbridge.protocols.anthropic.door_stream import StreamEncoder
from glmbridge.protocols.anthropic.errors import encode_error, error_event, error_headers

__all__ = ["DOOR", "AnthropicDoor"]


class AnthropicDoor:
    """Implements :class:`glmbridge.roles.FrontDoor` for Anthropic Messages clients."""

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

    # The error renderers of glmbridge.protocols.anthropic.errors, as they are.
    encode_error = staticmethod(encode_error)
    error_headers = staticmethod(error_headers)
    error_event = staticmethod(error_event)


DOOR = AnthropicDoor()
