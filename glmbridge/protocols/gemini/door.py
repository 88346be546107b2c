"""The Gemini front door (``generateContent`` / ``streamGenerateContent``)."""

from __future__ import annotations

import msgspec

from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.protocols.gemini.door_request import decode_request
from glmbridge.protocols.gemini.door_response import response_from_ir
from glmbridge.protocols.gemini.door_stream import Framing, StreamEncoder
from glmbridge.protocols.gemini.errors import encode_error, error_headers, error_object

__all__ = ["GEMINI_ARRAY_DOOR", "GEMINI_DOOR", "GeminiDoor"]

_ENCODE = msgspec.json.Encoder()


class GeminiDoor:
    """Implements :class:`glmbridge.roles.FrontDoor` for Gemini API clients.

    The model is in the URL, not the body: the server decodes with
    :func:`~glmbridge.protocols.gemini.door_request.decode_request` (``model=``) and uses the
    door for everything else. ``framing`` is the stream form (``sse`` for ``?alt=sse``,
    else ``array``).
    """

    name = "gemini"

    def __init__(self, framing: Framing = "sse", request: ir.Request | None = None) -> None:
        self.framing: Framing = framing
        self._request = request
        # The JSON-array form is one JSON document, as Google serves it.
        self.stream_content_type = (
            "text/event-stream; charset=utf-8" if framing == "sse" else "application/json"
        )

    def decode_request(self, body: bytes) -> ir.Request:
        """A request for the model ``gemini`` (use ``request.decode_request(model=)``)."""
        return decode_request(body, model="gemini")

    def for_request(self, req: ir.Request) -> GeminiDoor:
        """The door bound to ``req``."""
        return GeminiDoor(self.framing, req)

    def _include_thoughts(self) -> bool:
        return bool(self._request is not None and self._request.echo.get("include_thoughts"))

    def encode_response(self, resp: ir.Response) -> bytes:
        """A ``GenerateContentResponse`` body."""
        return response_from_ir(resp, include_thoughts=self._include_thoughts())

    def stream_encoder(self) -> StreamEncoder:
        """A fresh chunk encoder."""
        model = self._request.model if self._request is not None else ""
        return StreamEncoder(model=model, include_thoughts=self._include_thoughts(),
                             framing=self.framing)  # fmt: skip

    encode_error = staticmethod(encode_error)
    """``(status, body)`` in Google's error shape."""
    error_headers = staticmethod(error_headers)
    """``retry-after`` when the upstream said how long to wait."""

    def error_event(self, err: GlmbridgeError) -> bytes:
        """A bare ``{"error": ...}`` line."""
        return _ENCODE.encode({"error": error_object(err)[1]}) + b"\n"


GEMINI_DOOR = GeminiDoor("sse")
GEMINI_ARRAY_DOOR = GeminiDoor("array")
