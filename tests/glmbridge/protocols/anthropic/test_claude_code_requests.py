"""Real recorded Claude Code requests convert to GLM without loss.

The bodies in ``tests/fixtures/claude_code/request_*.json`` were recorded from Claude
Code 2.1.197 (see the README there). Each goes the server's way: ``decode_request``,
``resolve_route``, ``openai.request_from_ir`` for the routed model, ``encode_request``;
the tests then read the GLM body as plain JSON.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

import glmbridge
from glmbridge.protocols import anthropic as ac
from glmbridge.protocols import openai as oa

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "claude_code"
REQUESTS = sorted(p.name for p in FIXTURES.glob("request_*.json"))
# A real 1x1 PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
IMAGE_URL = "https://example.com/screenshot.png"
# Keys and block types that exist only in Anthropic's protocol.
ANTHROPIC_KEYS = {
    "cache_control", "metadata", "context_management", "output_config", "output_format",
    "input_schema", "tool_use_id", "is_error", "signature", "citations", "system",
    "stop_sequences", "top_k", "anthropic_version", "anthropic_beta", "betas", "source",
    "media_type", "budget_tokens", "effort", "disable_parallel_tool_use",
}  # fmt: skip
ANTHROPIC_TYPES = {
    "tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document",
    "search_result", "server_tool_use", "web_search_tool_result", "ephemeral", "base64",
    "adaptive", "custom", "json_schema",
}  # fmt: skip


class _Params(msgspec.Struct):
    parameters: msgspec.Raw


class _Function(msgspec.Struct):
    function: _Params


class _RawTools(msgspec.Struct):
    tools: list[_Function] = []


class _RawInputTools(msgspec.Struct):
    class Tool(msgspec.Struct):
        input_schema: msgspec.Raw

    tools: list[Tool] = []


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def compact(doc: dict[str, Any]) -> bytes:
    """The body as Claude Code sends it (compact JSON, raw UTF-8)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def convert(body: bytes) -> tuple[glmbridge.Route, bytes, dict[str, Any]]:
    """The server's conversion: (route, GLM body bytes, GLM body as JSON)."""
    req = ac.decode_request(body)
    route = glmbridge.resolve_route(req)
    glm = oa.encode_request(oa.request_from_ir(req, model=route.model, spec=route.spec))
    return route, glm, json.loads(glm)


def texts_of(content: str | list[dict[str, Any]]) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b["type"] == "text"]


def walk(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, key, value) of every dict entry, tool schemas and message strings excluded."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((path, key, value))
            if key != "parameters":  # the client's JSON Schema: any key may appear there
                out += walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += walk(value, f"{path}.{i}")
    return out


# --- every recorded request ------------------------------------------------------------


@pytest.mark.parametrize("name", REQUESTS)
def test_tools_pass_through_unchanged(name: str) -> None:
    """Every tool keeps name, description, and its input_schema as the same JSON bytes."""
    doc = load(name)
    body = compact(doc)
    _, glm, out = convert(body)
    tools = doc["tools"]
    got = out.get("tools", [])
    assert len(got) == len(tools)
    if name in ("request_main.json", "request_tool_result.json"):
        assert len(got) == 24
    for tool, wire in zip(tools, got, strict=True):
        assert wire["type"] == "function"
        assert wire["function"]["name"] == tool["name"]
        assert wire["function"]["description"] == tool["description"]
        assert wire["function"]["parameters"] == tool["input_schema"]
    # the schemas are never re-encoded: the very same bytes reach GLM
    raw_in = msgspec.json.decode(body, type=_RawInputTools).tools
    raw_out = msgspec.json.decode(glm, type=_RawTools).tools
    assert [bytes(t.function.parameters) for t in raw_out] == [
        bytes(t.input_schema) for t in raw_in
    ]


@pytest.mark.parametrize("name", REQUESTS)
def test_system_prompt_first_and_complete(name: str) -> None:
    """The GLM system message is first and holds every system block's text, in order."""
    doc = load(name)
    _, _, out = convert(compact(doc))
    first = out["messages"][0]
    assert first["role"] == "system"
    blocks = [b["text"] for b in doc["system"]]
    assert len(blocks) == 3
    assert first["content"].startswith("\n\n".join(blocks))
    assert sum(m["role"] == "system" for m in out["messages"]) == 1
    if "format" in doc.get("output_config", {}):  # json_schema: the schema follows the prompt
        schema = doc["output_config"]["format"]["schema"]
        tail = first["content"][len("\n\n".join(blocks)) :]
        assert tail.startswith("\n\n") and json.loads(tail.rsplit("\n", 1)[-1]) == schema
        assert out["response_format"] == {"type": "json_object"}
    else:
        assert first["content"] == "\n\n".join(blocks)


def _expected_messages(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(role, content) of the GLM messages after the system one, per the documented mapping."""
    out: list[tuple[str, str | None]] = []
    for msg in doc["messages"]:
        content = msg["content"]
        if msg["role"] == "system":
            text = "\n\n".join(texts_of(content))
            out.append(("user", f"<system-reminder>\n{text}\n</system-reminder>"))
        elif msg["role"] == "assistant":
            text = "".join(texts_of(content))
            out.append(("assistant", text or None))
        elif isinstance(content, list) and all(b["type"] == "tool_result" for b in content):
            out += [("tool", texts_of(b["content"])[0]) for b in content]
        else:
            out.append(("user", "\n\n".join(t for t in texts_of(content) if t.strip())))
    return out


@pytest.mark.parametrize("name", REQUESTS)
def test_messages_in_place_with_every_text(name: str) -> None:
    """User texts arrive verbatim, a mid-conversation system message becomes a reminder in place."""
    doc = load(name)
    _, _, out = convert(compact(doc))
    got = [(m["role"], m["content"]) for m in out["messages"][1:]]
    assert got == _expected_messages(doc)
    if name == "request_main.json":  # [user, system] -> [system, user, user(reminder)]
        assert [m["role"] for m in doc["messages"]] == ["user", "system"]
        reminder = out["messages"][2]["content"]
        assert reminder.startswith("<system-reminder>\nAvailable agent types")
        assert doc["messages"][1]["content"] in reminder
        for text in texts_of(doc["messages"][0]["content"]):
            assert text in out["messages"][1]["content"]


@pytest.mark.parametrize("name", REQUESTS)
def test_nothing_anthropic_only_reaches_glm(name: str) -> None:
    """No cache_control, metadata, context_management, output_config or Anthropic types."""
    _, _, out = convert(compact(load(name)))
    allowed_top = set(oa.ChatCompletionRequest.__struct_fields__)
    assert set(out) <= allowed_top
    for path, key, value in walk(out):
        assert key not in ANTHROPIC_KEYS or path.endswith(".properties"), f"{path}.{key}"
        if key == "type":
            assert value not in ANTHROPIC_TYPES, f"{path}.type = {value}"
        if key == "role":
            assert value in ("system", "user", "assistant", "tool")


@pytest.mark.parametrize("name", REQUESTS)
def test_limits_thinking_and_stream(name: str) -> None:
    """max_tokens is clamped to the routed model's max_output; thinking and stream carried."""
    doc = load(name)
    route, _, out = convert(compact(doc))
    assert out["model"] == route.model
    assert out["max_tokens"] == min(doc["max_tokens"], route.spec.max_output)
    thinking = doc.get("thinking")
    if thinking is None:
        assert "thinking" not in out
    else:
        expected = "disabled" if thinking["type"] == "disabled" else "enabled"
        assert out["thinking"] == {"type": expected}
    assert out.get("stream") is (True if doc.get("stream") else None)
    if doc["model"].startswith("glm-"):
        assert route.model == doc["model"] and route.reason == "passthrough"


def test_main_request_routes_to_glm_53_with_thinking() -> None:
    """Claude Code's main request (opus, adaptive thinking) -> glm-5.3, thinking enabled."""
    route, glm, out = convert((FIXTURES / "request_main.json").read_bytes())
    assert (route.model, route.reason) == ("glm-5.3", "alias:*opus*")
    assert out["thinking"] == {"type": "enabled"}
    assert out["max_tokens"] == 64000  # below glm-5.3's 128K cap: unchanged
    assert out["tool_stream"] is True and out["tool_choice"] == "auto"
    assert len(glm) < len((FIXTURES / "request_main.json").read_bytes())


# --- the tool round trip -----------------------------------------------------------------


def test_tool_result_round_trip() -> None:
    """tool_use -> assistant tool_calls (same arguments), tool_result -> tool message."""
    doc = load("request_tool_result.json")
    tool_use = doc["messages"][2]["content"][0]
    result = doc["messages"][3]["content"][0]
    _, _, out = convert(compact(doc))
    messages = out["messages"]
    assistant = next(m for m in messages if m["role"] == "assistant")
    (call,) = assistant["tool_calls"]
    assert call["id"] == tool_use["id"] and call["type"] == "function"
    assert call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"]) == tool_use["input"]
    assert assistant["content"] is None and "reasoning_content" not in assistant
    tool = messages[messages.index(assistant) + 1]
    assert tool == {
        "role": "tool",
        "tool_call_id": tool_use["id"],
        "content": result["content"],
    }
    assert result["tool_use_id"] == tool_use["id"] and result["content"] == "hello-from-tool"
    assert messages[-1] == tool  # nothing else in the last user turn


def test_prior_thinking_and_text_become_reasoning_content_and_content() -> None:
    """A thinking block before the tool_use travels back as reasoning_content."""
    doc = load("request_tool_result.json")
    assistant = doc["messages"][2]
    assistant["content"] = [
        {"type": "thinking", "thinking": "The user wants echo. 先运行它。", "signature": "sig=="},
        {"type": "text", "text": "Running it now."},
        *assistant["content"],
    ]
    _, _, out = convert(compact(doc))
    wire = next(m for m in out["messages"] if m["role"] == "assistant")
    assert wire["reasoning_content"] == "The user wants echo. 先运行它。"
    assert wire["content"] == "Running it now."
    assert json.loads(wire["tool_calls"][0]["function"]["arguments"]) == {
        "command": "echo hello-from-tool",
        "description": "Echo",
    }


def _with_tool_result_content(content: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(load("request_tool_result.json"))
    doc["messages"][3]["content"][0]["content"] = content
    return doc


def _image_parts(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        part
        for m in out["messages"]
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image_url"
    ]


@pytest.mark.parametrize(
    ("source", "url"),
    [
        pytest.param(
            {"type": "base64", "media_type": "image/png", "data": PNG_B64}, PNG_B64, id="base64"
        ),
        pytest.param({"type": "url", "url": IMAGE_URL}, IMAGE_URL, id="url"),
    ],
)
def test_image_in_tool_result_routes_to_vision_and_reaches_glm(
    source: dict[str, Any], url: str
) -> None:
    """An image inside a tool_result switches to the Coding Plan's vision model (glm-5.3-flash,
    zai-fidelity 1.3) and arrives as an image_url part."""
    doc = _with_tool_result_content(
        [{"type": "text", "text": "screenshot taken"}, {"type": "image", "source": source}]
    )
    route, _, out = convert(compact(doc))
    assert (route.model, route.reason) == ("glm-5.3-flash", "vision")
    assert route.spec.vision
    (part,) = _image_parts(out)
    assert part == {"type": "image_url", "image_url": {"url": url}}
    assert not part["image_url"]["url"].startswith("data:")  # GLM wants bare base64
    # the tool message keeps the text and points at the image that follows
    messages = out["messages"]
    tool = next(m for m in messages if m["role"] == "tool")
    assert tool["tool_call_id"] == doc["messages"][2]["content"][0]["id"]
    assert tool["content"].startswith("screenshot taken")
    follow = messages[messages.index(tool) + 1]
    assert follow["role"] == "user" and follow["content"][0] == part
    # glm-5.3-flash caps output at 128K: Claude Code's 64000 is kept
    assert out["max_tokens"] == doc["max_tokens"] < route.spec.max_output
    assert "tool_stream" not in out  # the vision request schema has no tool_stream (OAS)
    assert len(out["tools"]) == 24


def test_image_in_an_earlier_turn_does_not_switch_models() -> None:
    """Only the current user turn's media route to the vision model."""
    doc = _with_tool_result_content(
        [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
            }
        ]
    )
    doc["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "I see."}]})
    doc["messages"].append({"role": "user", "content": "thanks"})
    route, _, out = convert(compact(doc))
    assert route.model == "glm-5.3"
    # the text model cannot read it: a placeholder, never the bytes
    assert _image_parts(out) == [] and PNG_B64 not in json.dumps(out)


def test_system_message_inside_a_tool_loop_waits_for_the_tool_result() -> None:
    """A reminder between tool_use and tool_result follows the tool message (never splits them)."""
    doc = load("request_tool_result.json")
    doc["messages"].insert(3, {"role": "system", "content": "Hook: the command was allowed."})
    _, _, out = convert(compact(doc))
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "user", "assistant", "tool", "user"]
    assert out["messages"][-1]["content"] == (
        "<system-reminder>\nHook: the command was allowed.\n</system-reminder>"
    )


# --- the Coding Plan since September 2026 (issue 19) -------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "model"),
    [
        ("request_main.json", "glm-5.3"),  # the main loop
        ("request_bare.json", "glm-5.3"),
        ("request_small.json", "glm-5.3-flash"),  # the session title: thinking off, no tools
        ("web_search_request.json", "glm-5.3-flash"),  # WebSearch: thinking off, server tool
        ("web_fetch_request.json", "glm-5.3-flash"),  # WebFetch's page processing
        ("request_small_glm_env.json", "glm-4.5-air"),  # a glm id is passed through as asked
    ],
)
def test_claude_codes_side_requests_go_to_flash_and_never_disable_thinking(
    fixture: str, model: str
) -> None:
    """Default routing: the main loop on GLM-5.3, side requests on GLM-5.3-Flash (three times
    the quota: stefandevo/glm-acp-agent#96); both always think, so ``disabled`` is never sent
    (GLM-5.3 answers 400 to it: openclaw/openclaw PR#148642)."""
    exchange = glmbridge.Exchange.prepare(ac.DOOR, (FIXTURES / fixture).read_bytes())
    out = json.loads(exchange.body)
    assert exchange.route.model == out["model"] == model
    if model.startswith("glm-5.3"):
        assert exchange.route.spec.thinking == "always"
        assert out.get("thinking", {}).get("type") != "disabled"
