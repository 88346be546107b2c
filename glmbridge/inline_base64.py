"""Inline media bytes in one canonical form: standard base64 with padding, no prefix.

Clients do not agree on how to write base64. google-genai's ``types.Part.from_bytes`` sends
the URL-safe alphabet (``-``, ``_``: its ``_common.encode_unserializable_types`` calls
``base64.urlsafe_b64encode``), some clients drop the ``=`` padding,
others paste a whole ``data:<type>;base64,`` URL where bare base64 belongs, or wrap lines.
GLM reads only the standard alphabet (RFC 4648 §4), and rejects anything else as an invalid
image (code 1210). Every door passes inline data through :func:`normalize_base64`, which
answers the canonical form, or a :class:`~glmbridge.errors.ClientRequestError` naming the
part when the data is not base64 at all (never a ``binascii.Error`` escaping as a 500).
"""

from __future__ import annotations

import binascii
import re

from glmbridge.errors import ClientRequestError

__all__ = ["decode_base64", "normalize_base64"]

_URL_SAFE = str.maketrans("-_", "+/")
_DATA_URL = re.compile(r"data:[^,]{0,200};base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def normalize_base64(data: str, path: str) -> str:
    """``data`` as standard, padded base64 (URL-safe alphabet translated, padding added, a
    ``data:…;base64,`` prefix and line breaks removed).

    Raises:
        ClientRequestError: ``data`` is not base64 (the error names ``path``).
    """
    text = data
    prefix = _DATA_URL.match(text)
    if prefix is not None:
        text = text[prefix.end() :]
    if not text.isascii():
        raise ClientRequestError("is not valid base64 (non-ASCII characters)", path=path)
    if "\n" in text or "\r" in text or " " in text or "\t" in text:
        text = _WHITESPACE.sub("", text)
    if "-" in text or "_" in text:
        text = text.translate(_URL_SAFE)
    text = text.rstrip("=")
    if len(text) % 4 == 1:  # no byte string encodes to this length
        raise ClientRequestError("is not valid base64 (truncated)", path=path)
    text += "=" * (-len(text) % 4)
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ClientRequestError("is not valid base64", path=path) from None
    return text


def decode_base64(data: str, path: str) -> bytes:
    """The bytes ``data`` encodes, in any form :func:`normalize_base64` accepts.

    Raises:
        ClientRequestError: ``data`` is not base64 (the error names ``path``).
    """
    return binascii.a2b_base64(normalize_base64(data, path), strict_mode=True)
