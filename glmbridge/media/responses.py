"""The Responses API's hosted ``image_generation`` tool, run by the gateway, sans-I/O.

GLM cannot run OpenAI's hosted tools, so the gateway does it the way it runs web search: it
offers GLM an ``image_generation`` *function*; when GLM calls it, the gateway makes the image
(glm-image), gives GLM a short tool result and asks again. The client sees what OpenAI's own
API shows: an ``image_generation_call`` output item (``result``: the base64 image,
``revised_prompt``: the prompt used) where GLM's call was, and in a stream the events
``response.image_generation_call.in_progress`` / ``generating`` / ``completed`` around it
(OpenAI's ``ResponseImageGenCall*Event`` types). The loop works on the wire (Responses JSON
in and out), so the door's own decoding and encoding are reused unchanged:

    plan = ImageToolPlan.from_body(body)          # None: no hosted image tool
    round_body = plan.round_body()                # the request GLM sees (not streamed)
    resp = <the door's answer to round_body>
    calls = plan.feed(resp)                        # GLM's image_generation calls
    for call in calls: plan.record(call, <made image or failure>)
    ... until no call (or MAX_ROUNDS); then plan.result() is the client's response.

Codex CLI does not send this tool to a custom provider (tests/fixtures/codex/README.md);
the openai SDK and agents built on the Responses API do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from glmbridge.errors import ClientRequestError, UpstreamError

__all__ = ["IMAGE_FUNCTION", "ImageCall", "ImageToolPlan", "has_image_tool"]

FUNCTION_NAME = "image_generation"
MAX_ROUNDS = 4
IMAGE_FUNCTION: dict[str, Any] = {
    "type": "function",
    "name": FUNCTION_NAME,
    "description": (
        "Generate an image from a text description and show it to the user. Use it when "
        "the user asks for an image, picture, drawing, logo, icon, diagram or illustration. "
        "Write a detailed, self-contained prompt (subject, style, colours, composition)."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "description": "What to draw, in detail"},
            "size": {"type": "string",
                     "description": "WIDTHxHEIGHT such as 1536x1024; omit for the default"},
        },
        "required": ["prompt"],
    },
}  # fmt: skip
_QUALITY = {"low": "medium", "medium": "medium", "high": "high", "auto": "auto"}


def has_image_tool(body: bytes) -> bool:
    """Whether a Responses request body offers the hosted ``image_generation`` tool."""
    if b'"image_generation"' not in body:
        return False  # cheap test first
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    tools = data.get("tools") if isinstance(data, dict) else None
    return isinstance(tools, list) and any(_is_image_tool(t) for t in tools)


@dataclass(frozen=True, slots=True)
class ImageCall:
    """One ``image_generation`` call GLM made: the client's item id, GLM's call id, the
    prompt and the size it asked for."""

    item_id: str
    call_id: str
    prompt: str
    size: str | None
    failure: str | None = None  # refused before running (no prompt, too many)


@dataclass
class ImageToolPlan:
    """The state of one Responses turn with the hosted image tool (see the module)."""

    body: dict[str, Any]
    tool: dict[str, Any]
    stream: bool
    inputs: list[Any] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    cached: int = 0  # cached input tokens over the rounds
    images: int = 0
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    _pending: dict[str, int] = field(default_factory=dict)  # call_id -> output index

    @classmethod
    def from_body(cls, raw: bytes) -> ImageToolPlan:
        """The plan for a request body that has the tool (:func:`has_image_tool`)."""
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise ClientRequestError("request body is not valid JSON") from None
        tool = next(t for t in body["tools"] if _is_image_tool(t))
        given = body.get("input")
        if given is not None and not isinstance(given, str | list):
            raise ClientRequestError("input must be a string or a list of items", path="input")
        inputs = (
            [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        )
        return cls(body=body, tool=tool, stream=body.get("stream") is True, inputs=inputs)

    @property
    def default_size(self) -> str | None:
        """The tool's ``size`` unless ``auto``."""
        size = self.tool.get("size")
        return size if isinstance(size, str) and size != "auto" else None

    @property
    def quality(self) -> str:
        """The tool's quality in OpenAI's words (``high`` means glm-image ``hd``)."""
        return _QUALITY.get(str(self.tool.get("quality", "auto")), "auto")

    def round_body(self) -> bytes:
        """The request of the next round: the hosted tool as a function, not streamed; the
        last allowed round offers no image function."""
        tools = [t for t in self.body.get("tools", []) if not _is_image_tool(t)]
        if self.rounds < MAX_ROUNDS - 1:
            tools.append(IMAGE_FUNCTION)
        body = {**self.body, "input": self.inputs, "tools": tools, "stream": False}
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == FUNCTION_NAME:
            body["tool_choice"] = (
                {"type": "function", "name": FUNCTION_NAME} if self.rounds == 0 else "auto"
            )
        if not tools:
            body.pop("tool_choice", None)
            body.pop("tools", None)
        return msgspec.json.encode(body)

    def feed(self, answer: bytes) -> list[ImageCall]:
        """Take one round's Responses answer; return GLM's image calls (``[]``: done)."""
        try:
            resp = msgspec.json.decode(answer)
        except msgspec.DecodeError:
            raise UpstreamError("a round's answer is not JSON", status_hint=502) from None
        if not isinstance(resp, dict):
            raise UpstreamError("a round's answer is not a response", status_hint=502)
        self.rounds += 1
        self.first = self.first or resp
        self.last = resp
        for name, value in (resp.get("usage") or {}).items():
            if isinstance(value, int):
                self.usage[name] = self.usage.get(name, 0) + value
            elif name == "input_tokens_details" and isinstance(value, dict):
                cached = value.get("cached_tokens")
                self.cached += cached if isinstance(cached, int) else 0
        calls: list[ImageCall] = []
        for item in resp.get("output") or []:
            if item.get("type") == "function_call" and item.get("name") == FUNCTION_NAME:
                calls.append(self._call(item))
                self._pending[item.get("call_id", "")] = len(self.output)
                self.output.append(image_item(calls[-1], status="in_progress"))
            else:
                self.output.append(item)
            self.inputs.append(_as_input(item))
        return calls

    def _call(self, item: dict[str, Any]) -> ImageCall:
        try:
            args = msgspec.json.decode(item.get("arguments") or "{}")
        except msgspec.DecodeError:
            args = {}
        prompt = args.get("prompt") if isinstance(args, dict) else None
        size = args.get("size") if isinstance(args, dict) else None
        failure = None
        if not isinstance(prompt, str) or not prompt.strip():
            failure = "the prompt must be a non-empty string"
        item_id = "ig_" + secrets.token_hex(12)
        return ImageCall(item_id, str(item.get("call_id", "")), prompt or "",
                         size if isinstance(size, str) else self.default_size, failure)  # fmt: skip

    def record(
        self, call: ImageCall, b64: str | None, size: str, error: str | None
    ) -> dict[str, Any]:
        """The outcome of one call: the client's finished ``image_generation_call`` item (and
        GLM's tool result for the next round)."""
        failure = call.failure or error
        item = image_item(call, status="failed" if failure else "completed", result=b64,
                          size=size, quality=self.quality)  # fmt: skip
        self.output[self._pending.pop(call.call_id)] = item
        if failure:
            text = f"Image generation failed: {failure}"
        else:
            self.images += 1
            text = (f"The image ({size} PNG) was generated and is shown to the user. Do not "
                    "repeat it or its data; mention briefly what it shows if useful.")  # fmt: skip
        self.inputs.append(
            {"type": "function_call_output", "call_id": call.call_id, "output": text}
        )
        return item

    def result(self) -> dict[str, Any]:
        """The client's response: every round's output, image calls as image items."""
        assert self.first is not None and self.last is not None
        usage = dict(self.usage)
        for key in ("input_tokens_details", "output_tokens_details"):
            if key in (self.last.get("usage") or {}):
                usage[key] = self.last["usage"][key]
        return {**self.last, "id": self.first.get("id"), "created_at": self.first.get("created_at"),
                "output": self.output, "usage": usage or self.last.get("usage")}  # fmt: skip

    def totals(self) -> tuple[int, int, int]:
        """``(uncached input, cached input, output)`` tokens over every round."""
        given = self.usage.get("input_tokens", 0)
        return max(0, given - self.cached), self.cached, self.usage.get("output_tokens", 0)

    def pending_index(self, call: ImageCall) -> int:
        """Where ``call``'s item is in the output (until :meth:`record`)."""
        return self._pending[call.call_id]


def image_item(
    call: ImageCall,
    *,
    status: str,
    result: str | None = None,
    size: str | None = None,
    quality: str = "auto",
) -> dict[str, Any]:
    """An ``image_generation_call`` output item."""
    item: dict[str, Any] = {"id": call.item_id, "type": "image_generation_call", "status": status,
                            "result": result, "revised_prompt": call.prompt,
                            "output_format": "png", "background": "opaque"}  # fmt: skip
    if size is not None:
        item.update(size=size, quality=quality)
    return item


def _is_image_tool(tool: object) -> bool:
    return isinstance(tool, dict) and tool.get("type") == FUNCTION_NAME


def _as_input(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as the next round's input item (what the door reads back)."""
    return {k: v for k, v in item.items() if k != "status" or item.get("type") != "message"}
