"""OpenAI Responses (``POST /v1/responses``): the front door Codex CLI speaks.

Modules: ``wire`` (the request as clients send it), ``door_request`` (-> IR; its
docstring lists the translation choices), ``items`` (output items and the response
object, shared by both answer paths; the reasoning round trip), ``door_response`` (IR
-> ``response`` object), ``door_stream`` (``StreamEncoder``: IR events -> ``response.*``
events), ``door`` (the :class:`~glmbridge.roles.FrontDoor`), ``grammar`` (the
event-stream validator). Errors use OpenAI's shape (:mod:`glmbridge.protocols.openai.errors`).
"""

from __future__ import annotations

from glmbridge.protocols.responses.door import RESPONSES_DOOR, ResponsesDoor
from glmbridge.protocols.responses.door_request import decode_request, request_to_ir
from glmbridge.protocols.responses.door_response import response_from_ir
from glmbridge.protocols.responses.door_stream import StreamEncoder
from glmbridge.protocols.responses.grammar import validate_responses_stream

__all__ = [
    "RESPONSES_DOOR",
    "ResponsesDoor",
    "StreamEncoder",
    "decode_request",
    "request_to_ir",
    "response_from_ir",
    "validate_responses_stream",
]
