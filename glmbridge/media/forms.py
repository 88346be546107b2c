"""Media request bodies: a JSON object, or ``multipart/form-data`` (the openai SDK sends
``POST /v1/videos`` so).

The body is already bounded by the server's ``max_body_bytes``; the standard library's MIME
parser splits a form. Text fields become ``str``, file fields ``(bytes, content_type)``.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import HTTP
from typing import Any

import msgspec

from glmbridge.errors import ClientRequestError

__all__ = ["decode_form", "decode_object"]

MAX_FIELDS = 32


def decode_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object; a 400 when it is not one."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ClientRequestError("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ClientRequestError("request body must be a JSON object")
    return data


def decode_form(body: bytes, content_type: str) -> dict[str, Any]:
    """The fields of a ``multipart/form-data`` body; a 400 when it is not one."""
    if "boundary=" not in content_type or "\r" in content_type or "\n" in content_type:
        raise ClientRequestError("multipart/form-data without a boundary")
    message = message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body,
        policy=HTTP,
    )
    if not message.is_multipart():
        raise ClientRequestError("the body is not multipart/form-data")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name or len(fields) >= MAX_FIELDS:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            fields[name] = (data, part.get_content_type())
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields
