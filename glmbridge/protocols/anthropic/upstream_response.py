"""Anthropic ``Message`` bodies from an upstream -> IR answers."""

from __future__ import annotations

import logging

import msgspec

from glmbridge import ir
from glmbridge._tool_args import exact_float
from glmbridge.errors import (
    ClientRequestError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.protocols.anthropic import wire as aw
from glmbridge.protocols.anthropic.door_request import _block_to_ir, _validation_error
from glmbridge.protocols.anthropic.errors import error_from_upstream

__all__ = ["response_to_ir", "stop_reason_to_ir", "usage_to_ir"]

logger = logging.getLogger("glmbridge.protocols.anthropic")

_DECODE_RESPONSE = msgspec.json.Decoder(aw.MessageIn, float_hook=exact_float)


def response_to_ir(
    body: bytes, *, model: str | None = None, input_estimate: int = 0
) -> ir.Response:
    """Parse an Anthropic ``Message`` body (from an Anthropic-compatible upstream).

    Args:
        body: the upstream response bytes.
        model: the model name to report (the one the client asked for); defaults to
            the upstream's ``model``.
        input_estimate: ``usage.input_tokens`` to report when the upstream says 0
            (Z.ai's endpoint does in streams: zai-org/GLM-5#139).

    Empty text blocks are dropped (Anthropic's grammar has none, and GLM rejects them
    when the client sends them back: zed-industries/zed#38153).

    Raises:
        UpstreamError: the body is an error object sent with HTTP 200.
        UpstreamProtocolError: the bytes are not a valid Anthropic message.
    """
    if body[:200].find(b'"error"') >= 0 and body.lstrip()[:1] == b"{":
        err = _in_band_error(body)
        if err is not None:
            raise err
    try:
        msg = _DECODE_RESPONSE.decode(body)
        content = [_block_to_ir(raw, "content", j) for j, raw in enumerate(msg.content)]
    except msgspec.ValidationError as exc:
        raise UpstreamProtocolError(
            f"anthropic response: {_validation_error(exc).message}"
        ) from None
    except ClientRequestError as exc:
        raise UpstreamProtocolError(f"anthropic response: {exc.message}") from None
    except (msgspec.DecodeError, RecursionError):
        raise UpstreamProtocolError("anthropic response is not valid JSON") from None
    return ir.Response(
        id=msg.id,
        model=model if model is not None else msg.model or "",
        content=[b for b in content if not (isinstance(b, ir.TextBlock) and not b.text)],
        stop_reason=stop_reason_to_ir(msg.stop_reason),
        stop_sequence=msg.stop_sequence,
        usage=usage_to_ir(msg.usage, input_estimate=input_estimate),
    )


def _in_band_error(body: bytes) -> UpstreamError | None:
    try:
        envelope = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("error"), dict):
        return None
    if envelope.get("type") == "error" or "content" not in envelope:
        return error_from_upstream(200, body)
    return None


def usage_to_ir(u: aw.UsageIn | None, *, input_estimate: int = 0) -> ir.Usage:
    """Upstream Anthropic usage -> IR; a zero ``input_tokens`` becomes ``input_estimate``."""
    u = u or aw.UsageIn()
    details = u.output_tokens_details
    return ir.Usage(
        input_tokens=u.input_tokens or input_estimate,
        output_tokens=u.output_tokens or 0,
        cache_read_input_tokens=u.cache_read_input_tokens or 0,
        cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
        reasoning_tokens=details.thinking_tokens if details is not None else None,
    )


def stop_reason_to_ir(value: str | None) -> ir.StopReason | None:
    """An upstream ``stop_reason``; an unknown value reads as ``end_turn`` (logged)."""
    if value is None:
        return None
    try:
        return ir.StopReason(value)
    except ValueError:
        logger.warning("unknown stop_reason %.40r read as end_turn", value)
        return ir.StopReason.END_TURN
