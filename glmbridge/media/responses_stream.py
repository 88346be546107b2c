"""Responses stream events for the gateway-run image tool (:mod:`glmbridge.media.responses`).

The answer of each round is known whole (the rounds are not streamed from GLM), so its
items are written as complete event sequences; an image call opens with
``response.image_generation_call.in_progress`` and ``generating`` before the image is made
(~20 s) and ends with ``completed`` after, so a client sees progress and the connection
carries events while it waits. Event shapes: the openai SDK's ``ResponseStreamEvent`` types.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["EventWriter"]

_encode = msgspec.json.encode


class EventWriter:
    """Numbers and encodes the events of one streamed response."""

    def __init__(self) -> None:
        self.sequence = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        """One SSE event (``event:`` and ``data:``) with the next sequence number."""
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"

    def start(self, response: dict[str, Any]) -> bytes:
        """``response.created`` and ``response.in_progress`` for the response shell."""
        shell = {**response, "status": "in_progress", "output": [], "usage": None}
        return self.event("response.created", response=shell) + self.event(
            "response.in_progress", response=shell
        )

    def item(self, index: int, item: dict[str, Any]) -> bytes:
        """A whole item: added, its content events, done."""
        kind = item.get("type")
        out = [self.event("response.output_item.added", output_index=index,
                          item=_opening(item))]  # fmt: skip
        where = {"item_id": item.get("id"), "output_index": index}
        if kind == "message":
            for n, part in enumerate(item.get("content") or []):
                empty = {**part, "text": ""} if "text" in part else part
                out.append(self.event("response.content_part.added", **where, content_index=n,
                                      part=empty))  # fmt: skip
                if part.get("type") == "output_text":
                    text = part.get("text", "")
                    out.append(self.event("response.output_text.delta", **where,
                                          content_index=n, delta=text, logprobs=[]))  # fmt: skip
                    out.append(self.event("response.output_text.done", **where,
                                          content_index=n, text=text, logprobs=[]))  # fmt: skip
                out.append(self.event("response.content_part.done", **where, content_index=n,
                                      part=part))  # fmt: skip
        elif kind == "function_call":
            args = item.get("arguments", "")
            out.append(self.event("response.function_call_arguments.delta", **where, delta=args))
            out.append(self.event("response.function_call_arguments.done", **where,
                                  arguments=args))  # fmt: skip
        out.append(self.event("response.output_item.done", output_index=index, item=item))
        return b"".join(out)

    def image_started(self, index: int, item: dict[str, Any]) -> bytes:
        """An image call opens: added, ``in_progress``, ``generating``."""
        where = {"item_id": item["id"], "output_index": index}
        return (self.event("response.output_item.added", output_index=index, item=item)
                + self.event("response.image_generation_call.in_progress", **where)
                + self.event("response.image_generation_call.generating", **where))  # fmt: skip

    def image_done(self, index: int, item: dict[str, Any]) -> bytes:
        """An image call ends: ``completed`` (when it did), done."""
        out = b""
        if item.get("status") == "completed":
            out = self.event("response.image_generation_call.completed", item_id=item["id"],
                             output_index=index)  # fmt: skip
        return out + self.event("response.output_item.done", output_index=index, item=item)

    def completed(self, response: dict[str, Any]) -> bytes:
        """``response.completed`` (or ``response.incomplete``) with the whole response."""
        kind = "response.incomplete" if response.get("status") == "incomplete" else (
            "response.completed")  # fmt: skip
        return self.event(kind, response=response)


def _opening(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "message":
        return {**item, "status": "in_progress", "content": []}
    if kind == "function_call":
        return {**item, "status": "in_progress", "arguments": ""}
    return item
