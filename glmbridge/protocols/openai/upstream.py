"""GLM's OpenAI-style chat API (``/chat/completions``) as an upstream codec."""

from __future__ import annotations

from glmbridge import ir
from glmbridge.errors import UpstreamError
from glmbridge.protocols.openai.errors import error_from_upstream
from glmbridge.protocols.openai.upstream_request import encode_request, request_from_ir
from glmbridge.protocols.openai.upstream_response import response_to_ir
from glmbridge.protocols.openai.upstream_stream import StreamDecoder
from glmbridge.protocols.openai.wire import GLM, OPENAI, Dialect
from glmbridge.routing import Route

__all__ = ["DIALECTS", "ChatUpstream"]

DIALECTS: dict[str, Dialect] = {"glm": GLM, "openai": OPENAI}


class ChatUpstream:
    """Implements :class:`glmbridge.roles.UpstreamCodec` for OpenAI-style chat APIs.

    Args:
        dialect: the upstream's quirks (``GLM`` for Z.ai and BigModel).
    """

    path = "/chat/completions"
    headers: dict[str, str] = {}

    def __init__(self, dialect: Dialect = GLM) -> None:
        self.dialect = dialect

    def encode_request(self, req: ir.Request, route: Route) -> bytes:
        """The chat-completions body for ``route``."""
        wire = request_from_ir(req, model=route.model, spec=route.spec, dialect=self.dialect)
        return encode_request(wire)

    def decode_response(self, body: bytes, *, model: str, input_estimate: int) -> ir.Response:
        """A ``200`` body -> IR (raises ``UpstreamError`` for an in-band error)."""
        return response_to_ir(
            body, model=model, dialect=self.dialect, input_estimate=input_estimate
        )

    def stream_decoder(
        self, *, model: str, message_id: str, input_tokens_estimate: int
    ) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        return StreamDecoder(
            model=model,
            message_id=message_id,
            input_tokens_estimate=input_tokens_estimate,
            dialect=self.dialect,
        )

    def decode_error(
        self, status: int, body: bytes, *, retry_after: float | None = None
    ) -> UpstreamError:
        """A non-200 answer -> :class:`UpstreamError`."""
        return error_from_upstream(status, body, retry_after=retry_after)
