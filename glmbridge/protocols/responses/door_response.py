"""Non-streamed Responses answers: IR -> the ``response`` object."""

from __future__ import annotations

from typing import Any

import msgspec

from glmbridge import ir
from glmbridge.protocols.openai.door_response import json_text
from glmbridge.protocols.responses.items import (
    Naming,
    freeform_input,
    response_object,
    search_sources,
    status_of,
)

__all__ = ["output_items", "response_from_ir", "response_id"]

_ENCODE = msgspec.json.Encoder(decimal_format="number")


def response_id(message_id: str) -> str:
    """The ``resp_…`` id for an exchange's message id."""
    return "resp_" + message_id.removeprefix("msg_")


def output_items(
    resp: ir.Response, naming: Naming, *, json_mode: bool = False
) -> list[dict[str, Any]]:
    """One output item per IR block, as the stream encoder produces them.

    Every item is ``completed``, also in an incomplete response: a stream sends each
    item's ``output_item.done`` before the stop reason is known, and both paths must
    give the same ``output`` (``status``/``incomplete_details`` say why it stopped).
    """
    item_status = "completed"
    items: list[dict[str, Any]] = []
    for block in resp.content:
        index = len(items)
        if isinstance(block, ir.ServerToolUseBlock) and block.name == "web_search":
            query = str(block.input.get("query", ""))
            items.append(naming.search(index, query, [], item_status))
            continue
        if isinstance(block, ir.WebSearchToolResultBlock):  # the sources of the search before
            if items and items[-1]["type"] == "web_search_call":
                items[-1]["action"]["sources"] = [
                    {"type": "url", "url": url} for url in search_sources(block)
                ]
            continue
        if isinstance(block, ir.ThinkingBlock):
            items.append(naming.reasoning(index, block.thinking, block.signature, item_status))
        elif isinstance(block, ir.TextBlock):
            text = json_text(block.text) if json_mode and block.text else block.text
            items.append(naming.message(index, text, item_status))
        elif isinstance(block, ir.ToolUseBlock):
            if naming.is_freeform(block.name):
                payload = freeform_input(block.input)
            else:
                payload = _ENCODE.encode(block.input).decode()
            items.append(naming.call(index, block, payload, item_status))
    return items


def response_from_ir(
    resp: ir.Response, *, echo: dict[str, Any], created_at: int, json_mode: bool = False
) -> bytes:
    """The ``response`` body for an IR answer (``resp.model``: the client's model name)."""
    naming = Naming(resp.id, echo)
    status, reason = status_of(resp.stop_reason)
    body = response_object(
        response_id=response_id(resp.id),
        created_at=created_at,
        model=resp.model,
        echo=echo,
        status=status,
        output=output_items(resp, naming, json_mode=json_mode),
        usage=resp.usage,
        incomplete_reason=reason,
    )
    return _ENCODE.encode(body)
