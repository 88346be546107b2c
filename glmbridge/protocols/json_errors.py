"""msgspec decode failures -> :class:`~glmbridge.errors.ClientRequestError` naming the field.

Every front door decodes its body with a typed msgspec decoder; this turns msgspec's
``Expected `int`, got `str` - at `$.a[0].b``` into ``a.0.b: expected `int`, got `str```,
and never echoes a client's value back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from glmbridge.errors import ClientRequestError

__all__ = ["decode_body", "validation_error"]

T = TypeVar("T")

_AT_RE = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING_RE = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def validation_error(
    exc: msgspec.ValidationError, prefix: str = "", allowed: Mapping[str, str] | None = None
) -> ClientRequestError:
    """The client error for a failed typed decode.

    Args:
        exc: msgspec's error.
        prefix: the dotted path of the value that was decoded (``tools.3``).
        allowed: hints for invalid enum values by path suffix (``{"role": "user or
            assistant"}``), since the offending value itself is never echoed.
    """
    match = _AT_RE.match(str(exc))
    detail, raw_path = (match["detail"], match["path"] or "") if match else (str(exc), "")
    # dict keys print as "[...]"; list indices as "[3]"
    path = raw_path.replace("[...]", "").replace("[", ".").replace("]", "").lstrip(".")
    if missing := _MISSING_RE.match(detail):
        path, detail = _join(path, missing["field"]), "required"
    elif detail.startswith(("Invalid enum value", "Invalid value")):
        full = _join(prefix, path)
        hints = (allowed or {}).items()
        hint = next((h for k, h in hints if full == k or full.endswith("." + k)), None)
        detail = f"invalid value, expected {hint}" if hint else "invalid value"
    else:
        # optional wire fields are typed `T | null`; "null" is just "absent" to a client
        detail = detail[:1].lower() + detail[1:].replace(" | null`", "`")
    full = _join(prefix, path)
    if not full:
        return ClientRequestError(f"body must be a JSON object ({detail})")
    return ClientRequestError(detail, path=full)


def decode_body(
    decoder: msgspec.json.Decoder[T],
    body: bytes | Any,
    prefix: str = "",
    allowed: Mapping[str, str] | None = None,
) -> T:
    """Decode ``body`` (bytes or a ``msgspec.Raw``) or raise a :class:`ClientRequestError`."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, prefix, allowed) from None
    except msgspec.DecodeError:
        raise ClientRequestError("body is not valid JSON") from None
    except RecursionError:
        raise ClientRequestError("body is nested too deeply") from None
