"""The OpenAI Chat Completions front door (``POST /v1/chat/completions``)."""

from __future__ import annotations

from glmbridge import ir
from glmbridge.protocols.bound_door import BoundDoor
from glmbridge.protocols.openai.door_request import decode_request
from glmbridge.protocols.openai.door_response import response_from_ir
from glmbridge.protocols.openai.door_stream import StreamEncoder
from glmbridge.protocols.openai.errors import encode_error, error_data, error_headers

__all__ = ["CHAT_DOOR", "ChatDoor"]


class ChatDoor(BoundDoor):
    """Implements :class:`glmbridge.roles.FrontDoor` for Chat Completions clients.

    The shared instance :data:`CHAT_DOOR` decodes; :meth:`for_request` gives the door
    bound to one request, which renders its answer (``include_usage``, JSON mode, one
    ``created`` time for the body or every chunk).
    """

    name = "openai"
    stream_content_type = "text/event-stream; charset=utf-8"

    def decode_request(self, body: bytes) -> ir.Request:
        """See :func:`glmbridge.protocols.openai.door_request.decode_request`."""
        return decode_request(body)

    def encode_response(self, resp: ir.Response) -> bytes:
        """A ``chat.completion`` body."""
        return response_from_ir(resp, created=self._created, json_mode=self._json_mode())

    def stream_encoder(self) -> StreamEncoder:
        """A fresh chunk encoder."""
        include_usage = bool(self._echo().get("include_usage"))
        return StreamEncoder(model=self._model(), include_usage=include_usage,
                             created=self._created)  # fmt: skip

    # The error renderers of glmbridge.protocols.openai.errors, as they are.
    encode_error = staticmethod(encode_error)
    error_headers = staticmethod(error_headers)
    error_event = staticmethod(error_data)  # a ``data: {"error": ...}`` frame


CHAT_DOOR = ChatDoor()
