"""The Google Gemini API (``generateContent``, ``streamGenerateContent``): the front door
for gemini-cli and the google-genai SDKs.

Modules: ``wire`` (the request as clients send it, camelCase or snake_case),
``door_request`` (-> IR; its docstring lists the translation choices),
``door_response`` (IR -> ``GenerateContentResponse``), ``door_stream``
(``StreamEncoder``, SSE or JSON-array framing), ``errors`` (Google's error shape),
``door`` (the :class:`~glmbridge.roles.FrontDoor`), ``grammar`` (the stream validator).
"""

from __future__ import annotations

from glmbridge.protocols.gemini.door import GEMINI_ARRAY_DOOR, GEMINI_DOOR, GeminiDoor
from glmbridge.protocols.gemini.door_request import decode_request, request_to_ir, schema_to_json
from glmbridge.protocols.gemini.door_response import response_from_ir
from glmbridge.protocols.gemini.door_stream import StreamEncoder
from glmbridge.protocols.gemini.errors import encode_error, error_object
from glmbridge.protocols.gemini.grammar import validate_gemini_stream

__all__ = [
    "GEMINI_ARRAY_DOOR",
    "GEMINI_DOOR",
    "GeminiDoor",
    "StreamEncoder",
    "decode_request",
    "encode_error",
    "error_object",
    "request_to_ir",
    "response_from_ir",
    "schema_to_json",
    "validate_gemini_stream",
]
