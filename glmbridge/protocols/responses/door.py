"""The OpenAI Responses front door (``POST /v1/responses``)."""

from __future__ import annotations

import msgspec

from glmbridge import ir
from glmbridge.errors import GlmbridgeError
from glmbridge.protocols.bound_door import BoundDoor
from glmbridge.protocols.openai.errors import encode_error, error_headers, openai_error
from glmbridge.protocols.responses.door_request import decode_request
from glmbridge.protocols.responses.door_response import response_from_ir
from glmbridge.protocols.responses.door_stream import StreamEncoder

__all__ = ["RESPONSES_DOOR", "ResponsesDoor"]

_ENCODE = msgspec.json.Encoder()


class ResponsesDoor(BoundDoor):
    """Implements :class:`glmbridge.roles.FrontDoor` for Responses clients (Codex CLI).

    The shared instance :data:`RESPONSES_DOOR` decodes; :meth:`for_request` binds it to
    one request, whose settings the response object echoes.
    """

    name = "responses"
    stream_content_type = "text/event-stream; charset=utf-8"

    def decode_request(self, body: bytes) -> ir.Request:
        """See :func:`glmbridge.protocols.responses.door_request.decode_request`."""
        return decode_request(body)

    def encode_response(self, resp: ir.Response) -> bytes:
        """A ``response`` object."""
        return response_from_ir(resp, echo=self._echo(), created_at=self._created,
                                json_mode=self._json_mode())  # fmt: skip

    def stream_encoder(self) -> StreamEncoder:
        """A fresh event encoder."""
        return StreamEncoder(model=self._model(), echo=self._echo(), created_at=self._created)

    # Errors before the first byte are OpenAI's, as on the chat door.
    encode_error = staticmethod(encode_error)
    error_headers = staticmethod(error_headers)

    def error_event(self, err: GlmbridgeError) -> bytes:
        """An ``error`` event (for a stream that has no encoder yet)."""
        _, obj = openai_error(err)
        body = {"type": "error", "sequence_number": 0, "code": obj["code"] or obj["type"],
                "message": obj["message"], "param": obj["param"]}  # fmt: skip
        return b"event: error\ndata: " + _ENCODE.encode(body) + b"\n\n"


RESPONSES_DOOR = ResponsesDoor()
