"""Every recorded client request to a chat door, decoded as the bridge decodes it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from glmbridge import ir
from glmbridge.doors import GEMINI_DOOR, RESPONSES_DOOR, anthropic
from glmbridge.protocols.gemini.door_request import decode_request as gemini_decode
from glmbridge.roles import FrontDoor

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_GEMINI_PATH = re.compile(r"/v1(?:beta)?/models/(?P<model>[^:]+):(?P<action>\w+)")


def wire(body: Any) -> bytes:
    """A recorded body as the clients send it: compact JSON (Claude Code and gemini-cli
    are JavaScript, Codex is Rust; all three send no whitespace)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def recorded_requests() -> Iterator[tuple[str, FrontDoor, ir.Request]]:
    """``(fixture name, door, decoded request)`` for every recorded request to a chat door
    (Anthropic Messages, Responses, Gemini generate/countTokens)."""
    for path in sorted((FIXTURES / "claude_code").glob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "messages" in doc and "model" in doc:
            yield (
                f"claude_code/{path.name}",
                anthropic.DOOR,
                anthropic.DOOR.decode_request(wire(doc)),
            )
    for path in sorted((FIXTURES / "codex").glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("method") == "POST" and doc["path"].split("?")[0].endswith("/responses"):
            req = RESPONSES_DOOR.decode_request(wire(doc["body"]))
            yield f"codex/{path.name}", RESPONSES_DOOR, req
    for path in sorted((FIXTURES / "gemini_cli").glob("*-[0-9].json")):
        doc = json.loads(path.read_text())
        match = _GEMINI_PATH.match(doc["path"])
        assert match is not None, path
        stream = match["action"] == "streamGenerateContent"
        req = gemini_decode(wire(doc["body"]), model=match["model"], stream=stream)
        yield f"gemini_cli/{path.name}", GEMINI_DOOR, req


def count_images(blocks: list[ir.Block]) -> int:
    """Image blocks, tool results' included: their cost depends on pixels neither side
    knows here, so both sides leave them out."""
    n = 0
    for block in blocks:
        if isinstance(block, ir.ImageBlock):
            n += 1
        elif isinstance(block, ir.ToolResultBlock):
            n += count_images(block.content)
    return n
