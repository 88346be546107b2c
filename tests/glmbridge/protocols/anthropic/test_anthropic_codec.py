"""Anthropic Messages codec: request decoding, response/error encoding, the SSE stream encoder.

The official ``anthropic`` SDK is the oracle: it builds request bodies we must accept,
validates our response bodies, and consumes our SSE streams through its own client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anthropic
import httpx2
import msgspec
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import (
    ClientRequestError,
    ErrorKind,
    StreamStateError,
    UpstreamError,
    UpstreamProtocolError,
)
from glmbridge.protocols import anthropic as codec
from glmbridge.protocols.anthropic.grammar import validate_anthropic_stream

SECRET = "prompt-text-that-must-never-leak"
LOGGER = "glmbridge.protocols.anthropic"


def body(**fields: Any) -> bytes:
    """A minimal valid request, with ``fields`` merged in."""
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return json.dumps(base).encode()


def user(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


def first_block(req: ir.Request) -> ir.Block:
    return req.messages[0].content[0]


# --- decoding: every shape the SDK and Claude Code send ------------------------------------

B64 = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
EPHEMERAL = {"type": "ephemeral"}
IR_EPHEMERAL = ir.CacheControl(type="ephemeral")

BLOCK_CASES = [
    pytest.param(
        {"type": "text", "text": "hello", "cache_control": EPHEMERAL},
        ir.TextBlock(text="hello", cache_control=IR_EPHEMERAL),
        id="text+cache_control",
    ),
    pytest.param(
        {"type": "text", "text": "x", "citations": [{"type": "char_location", "cited_text": "c"}]},
        ir.TextBlock(text="x", citations=[{"type": "char_location", "cited_text": "c"}]),
        id="text+citations",
    ),
    pytest.param(
        {"type": "image", "source": B64},
        ir.ImageBlock(
            source=ir.MediaSource(type="base64", media_type="image/png", data=B64["data"])
        ),
        id="image-base64",
    ),
    pytest.param(
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
        ir.ImageBlock(source=ir.MediaSource(type="url", url="https://x/y.png")),
        id="image-url",
    ),
    pytest.param(
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
        ir.ImageBlock(source=ir.MediaSource(type="file", file_id="file_1")),
        id="image-file",
    ),
    pytest.param(
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "T",
            "context": "C",
            "citations": {"enabled": True},
        },
        ir.DocumentBlock(
            source=ir.MediaSource(type="base64", media_type="application/pdf", data="JVBERi0="),
            title="T",
            context="C",
        ),
        id="document-base64",
    ),
    pytest.param(
        {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
        ir.DocumentBlock(source=ir.MediaSource(type="url", url="https://x/a.pdf")),
        id="document-url",
    ),
    pytest.param(
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}},
        ir.DocumentBlock(source=ir.MediaSource(type="text", media_type="text/plain", data="abc")),
        id="document-text",
    ),
    pytest.param(
        {"type": "document", "source": {"type": "content", "content": "plain"}},
        ir.DocumentBlock(source=ir.MediaSource(type="text", media_type="text/plain", data="plain")),
        id="document-content-string",
    ),
    pytest.param(
        {
            "type": "document",
            "source": {
                "type": "content",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        },
        ir.DocumentBlock(
            source=ir.MediaSource(type="text", media_type="text/plain", data="a\n\nb")
        ),
        id="document-content-blocks",
    ),
    pytest.param(
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        ir.ToolUseBlock(id="toolu_1", name="Bash", input={"command": "ls"}),
        id="tool_use",
    ),
    pytest.param(
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "out", "is_error": True},
        ir.ToolResultBlock(
            tool_use_id="toolu_1", content=[ir.TextBlock(text="out")], is_error=True
        ),
        id="tool_result-string-error",
    ),
    pytest.param(
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": ""},
        ir.ToolResultBlock(tool_use_id="toolu_1"),
        id="tool_result-empty-string",
    ),
    pytest.param(
        {"type": "tool_result", "tool_use_id": "toolu_1"},
        ir.ToolResultBlock(tool_use_id="toolu_1"),
        id="tool_result-no-content",
    ),
    pytest.param(
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "cache_control": EPHEMERAL,
            "content": [
                {"type": "text", "text": "shot:"},
                {"type": "image", "source": B64},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                },
                {
                    "type": "search_result",
                    "source": "https://s",
                    "title": "S",
                    "content": [{"type": "text", "text": "r"}],
                },
            ],
        },
        ir.ToolResultBlock(
            tool_use_id="toolu_1",
            cache_control=IR_EPHEMERAL,
            content=[
                ir.TextBlock(text="shot:"),
                ir.ImageBlock(
                    source=ir.MediaSource(type="base64", media_type="image/png", data=B64["data"])
                ),
                ir.DocumentBlock(
                    source=ir.MediaSource(type="text", media_type="text/plain", data="d")
                ),
                ir.SearchResultBlock(
                    source="https://s", title="S", content=[ir.TextBlock(text="r")]
                ),
            ],
        ),
        id="tool_result-list",
    ),
    pytest.param(
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        ir.ThinkingBlock(thinking="hmm", signature="sig=="),
        id="thinking",
    ),
    pytest.param(
        {"type": "redacted_thinking", "data": "opaque"},
        ir.RedactedThinkingBlock(data="opaque"),
        id="redacted_thinking",
    ),
    pytest.param(
        {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "web_search",
            "input": {"query": "q"},
        },
        ir.ServerToolUseBlock(id="srvtoolu_1", name="web_search", input={"query": "q"}),
        id="server_tool_use",
    ),
    pytest.param(
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {"type": "web_search_result", "url": "u", "title": "t", "encrypted_content": "e"}
            ],
        },
        ir.WebSearchToolResultBlock(
            tool_use_id="srvtoolu_1",
            content=[
                {"type": "web_search_result", "url": "u", "title": "t", "encrypted_content": "e"}
            ],
        ),
        id="web_search_tool_result",
    ),
    pytest.param(
        {
            "type": "search_result",
            "source": "https://s",
            "title": "S",
            "content": [{"type": "text", "text": "r", "cache_control": EPHEMERAL}],
            "citations": {"enabled": True},
        },
        ir.SearchResultBlock(
            source="https://s",
            title="S",
            content=[ir.TextBlock(text="r", cache_control=IR_EPHEMERAL)],
        ),
        id="search_result",
    ),
]


@pytest.mark.parametrize(("wire", "expected"), BLOCK_CASES)
def test_decode_block(wire: dict[str, Any], expected: ir.Block) -> None:
    req = codec.decode_request(body(messages=user(wire)))
    assert first_block(req) == expected


REQUEST_CASES = [
    pytest.param(
        {"system": "be brief"}, "system", [ir.TextBlock(text="be brief")], id="system-str"
    ),
    pytest.param(
        {
            "system": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]
        },
        "system",
        [
            ir.TextBlock(text="a"),
            ir.TextBlock(text="b", cache_control=ir.CacheControl(type="ephemeral", ttl="1h")),
        ],
        id="system-blocks",
    ),
    pytest.param({"system": ""}, "system", [], id="system-empty"),
    pytest.param(
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        "thinking",
        ir.Thinking(type="enabled", budget_tokens=2048),
        id="thinking-enabled",
    ),
    pytest.param(
        {"thinking": {"type": "disabled"}},
        "thinking",
        ir.Thinking(type="disabled"),
        id="thinking-off",
    ),
    pytest.param(
        {"thinking": {"type": "adaptive", "display": "omitted"}},
        "thinking",
        ir.Thinking(type="adaptive", display="omitted"),
        id="thinking-adaptive",
    ),
    pytest.param({"output_config": {"effort": "xhigh"}}, "effort", "xhigh", id="effort"),
    pytest.param(
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        "response_format",
        ir.ResponseFormat(type="json_schema", schema={"type": "object"}),
        id="output_config.format",
    ),
    pytest.param(
        {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
        "response_format",
        ir.ResponseFormat(type="json_schema", schema={"type": "object"}),
        id="output_format-beta",
    ),
    pytest.param(
        {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        "tool_choice",
        ir.ToolChoice(type="auto", disable_parallel_tool_use=True),
        id="tool_choice-auto",
    ),
    pytest.param(
        {"tool_choice": {"type": "any"}}, "tool_choice", ir.ToolChoice(type="any"), id="any"
    ),
    pytest.param(
        {"tool_choice": {"type": "tool", "name": "Bash"}},
        "tool_choice",
        ir.ToolChoice(type="tool", name="Bash"),
        id="tool_choice-tool",
    ),
    pytest.param(
        {"tool_choice": {"type": "none"}}, "tool_choice", ir.ToolChoice(type="none"), id="none"
    ),
    pytest.param(
        {"stop_sequences": ["\n\nH:", "END"]}, "stop_sequences", ["\n\nH:", "END"], id="stop"
    ),
    pytest.param(
        {"metadata": {"user_id": "user_abc"}}, "user_id", "user_abc", id="metadata.user_id"
    ),
    pytest.param({"metadata": {}}, "user_id", None, id="metadata-empty"),
    pytest.param({"stream": True}, "stream", True, id="stream"),
    pytest.param({"temperature": 0.5}, "temperature", 0.5, id="temperature"),
    pytest.param({"top_p": 0.9}, "top_p", 0.9, id="top_p"),
    pytest.param({"top_k": 5}, "top_k", 5, id="top_k"),
    pytest.param({"max_tokens": 1}, "max_tokens", 1, id="max_tokens-one"),
    pytest.param(
        {
            "cache_control": EPHEMERAL,
            "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
            "service_tier": "auto",
            "container": "cont_1",
            "inference_geo": "us",
            "mcp_servers": [{"type": "url", "url": "https://m", "name": "m"}],
            "some_future_field": {"x": [1, 2]},
        },
        "model",
        "claude-sonnet-4-5",
        id="anthropic-only-and-unknown-fields-ignored",
    ),
]


@pytest.mark.parametrize(("fields", "attr", "expected"), REQUEST_CASES)
def test_decode_request_fields(fields: dict[str, Any], attr: str, expected: Any) -> None:
    req = codec.decode_request(body(**fields))
    assert getattr(req, attr) == expected


def test_content_string_and_mid_conversation_system_message_kept_in_place() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "system", "content": "reminder"},
        {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
        {"role": "system", "content": [{"type": "text", "text": "r2"}]},
    ]
    req = codec.decode_request(body(messages=messages))
    assert req.messages == [
        ir.Message(role="user", content=[ir.TextBlock(text="one")]),
        ir.Message(role="system", content=[ir.TextBlock(text="reminder")]),
        ir.Message(role="assistant", content=[ir.TextBlock(text="two")]),
        ir.Message(role="system", content=[ir.TextBlock(text="r2")]),
    ]


def test_tools_client_schema_stays_raw_and_server_tools_keep_config() -> None:
    schema = {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    }
    tools = [
        {"name": "Bash", "description": "run", "input_schema": schema, "cache_control": EPHEMERAL},
        {"type": "custom", "name": "Other", "input_schema": {"type": "object"}},
        {
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 5,
            "allowed_domains": ["a.com"],
            "user_location": {"type": "approximate", "city": "Paris"},
        },
        {"type": "bash_20250124", "name": "bash"},
        {
            "type": "text_editor_20250728",
            "name": "str_replace_based_edit_tool",
            "max_characters": 9,
        },
    ]
    req = codec.decode_request(body(tools=tools))
    bash, other, web, shell, editor = req.tools
    assert isinstance(bash.input_schema, msgspec.Raw)
    assert msgspec.json.decode(bash.input_schema) == schema
    assert (bash.name, bash.description, bash.server_type, bash.cache_control) == (
        "Bash",
        "run",
        None,
        IR_EPHEMERAL,
    )
    assert other.server_type is None and isinstance(other.input_schema, msgspec.Raw)
    assert web == ir.Tool(
        name="web_search",
        server_type="web_search_20250305",
        config={
            "max_uses": 5,
            "allowed_domains": ["a.com"],
            "user_location": {"type": "approximate", "city": "Paris"},
        },
    )
    assert shell == ir.Tool(name="bash", server_type="bash_20250124")
    assert editor.server_type == "text_editor_20250728" and editor.config == {"max_characters": 9}


def test_unknown_blocks_are_kept_and_logged_without_prompt_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future = {"type": "compaction", "content": SECRET, "nested": {"a": [1]}}
    nested = {"type": "tool_reference", "tool_name": SECRET}
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": [nested]}
    msgs = user({"type": "text", "text": SECRET}, future, tool_result)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        req = codec.decode_request(body(messages=msgs))
    content = req.messages[0].content
    assert content[1] == ir.UnknownBlock(original_type="compaction", raw=future)
    assert isinstance(content[2], ir.ToolResultBlock)
    assert content[2].content == [ir.UnknownBlock(original_type="tool_reference", raw=nested)]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 2 and all(r.levelno == logging.WARNING for r in records)
    assert "messages.0.content.1" in records[0].getMessage()
    assert "compaction" in records[0].getMessage()
    assert SECRET not in caplog.text


def test_non_content_block_inside_tool_result_is_kept_as_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = {"type": "tool_use", "id": "x", "name": "n", "input": {}}
    wire = {"type": "tool_result", "tool_use_id": "t1", "content": [inner]}
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        block = first_block(codec.decode_request(body(messages=user(wire))))
    assert isinstance(block, ir.ToolResultBlock)
    assert block.content == [ir.UnknownBlock(original_type="tool_use", raw=inner)]
    assert caplog.records


def test_document_with_image_content_source_is_kept_verbatim() -> None:
    doc = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "image", "source": B64}]},
    }
    assert first_block(codec.decode_request(body(messages=user(doc)))) == ir.UnknownBlock(
        original_type="document", raw=doc
    )


# --- validation errors name their path ----------------------------------------------------

ERROR_CASES = [
    pytest.param(b"{not json", None, "body is not valid JSON", id="bad-json"),
    pytest.param(b"", None, "body is not valid JSON", id="empty"),
    pytest.param(b"[1, 2]", None, "body must be a JSON object", id="array-body"),
    pytest.param(b'"str"', None, "body must be a JSON object", id="string-body"),
    pytest.param(body(model=None), "model", "model: expected `str`", id="model-null"),
    pytest.param(body(model=""), "model", "model: expected `str` of length >= 1", id="model-empty"),
    pytest.param(b'{"max_tokens":1,"messages":[]}', "model", "model: required", id="model-missing"),
    pytest.param(
        body(max_tokens="9"), "max_tokens", "max_tokens: expected `int`", id="max_tokens-str"
    ),
    pytest.param(
        body(max_tokens=-1), "max_tokens", "max_tokens: expected `int` >= 0", id="max_tokens<0"
    ),
    pytest.param(body(max_tokens=None), "max_tokens", "max_tokens: required", id="max_tokens-null"),
    pytest.param(body(messages={}), "messages", "messages: expected `array`", id="messages-object"),
    pytest.param(
        b'{"model":"m","max_tokens":1}', "messages", "messages: required", id="messages-missing"
    ),
    pytest.param(
        body(messages=[{"role": "tool", "content": SECRET}]),
        "messages.0.role",
        "messages.0.role: invalid value, expected user, assistant or system",
        id="role",
    ),
    pytest.param(
        body(messages=[{"role": "user"}]), "messages.0.content", "required", id="content-missing"
    ),
    pytest.param(
        body(messages=[{"role": "user", "content": 5}]),
        "messages.0.content",
        "expected `str | array`, got `int`",
        id="content-int",
    ),
    pytest.param(
        body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": ["x"]}]),
        "messages.1.content.0",
        "expected `object`",
        id="block-not-object",
    ),
    pytest.param(
        body(messages=user({"text": SECRET})),
        "messages.0.content.0.type",
        "required",
        id="block-type-missing",
    ),
    pytest.param(
        body(messages=user({"type": 7, "text": SECRET})),
        "messages.0.content.0.type",
        "expected `str`",
        id="block-type-int",
    ),
    pytest.param(
        body(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "tool_result", "content": SECRET}]},
            ]
        ),
        "messages.2.content.0.tool_use_id",
        "messages.2.content.0.tool_use_id: required",
        id="tool_use_id-missing",
    ),
    pytest.param(
        body(messages=user({"type": "text", "text": 1})),
        "messages.0.content.0.text",
        "expected `str`, got `int`",
        id="text-not-str",
    ),
    pytest.param(
        body(messages=user({"type": "tool_use", "id": "t", "name": "n", "input": "x"})),
        "messages.0.content.0.input",
        "expected `object`",
        id="tool_use-input-str",
    ),
    pytest.param(
        body(messages=user({"type": "image", "source": {"type": "base64", "data": SECRET}})),
        "messages.0.content.0.source.media_type",
        "required",
        id="image-media_type-missing",
    ),
    pytest.param(
        body(messages=user({"type": "image", "source": {"type": "ftp", "url": SECRET}})),
        "messages.0.content.0.source.type",
        "invalid value",
        id="image-source-type",
    ),
    pytest.param(
        body(
            messages=user(
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]}
            )
        ),
        "messages.0.content.0.content.0.text",
        "required",
        id="nested-tool_result-block",
    ),
    pytest.param(
        body(system=[{"type": "text"}]), "system.0.text", "system.0.text: required", id="system"
    ),
    pytest.param(body(system=3), "system", "expected `str | array`", id="system-int"),
    pytest.param(
        body(tools=[{"input_schema": {"type": "object"}}]),
        "tools.0.name",
        "required",
        id="tool-name",
    ),
    pytest.param(
        body(tools=[{"name": "", "input_schema": {"type": "object"}}]),
        "tools.0.name",
        "length >= 1",
        id="tool-name-empty",
    ),
    pytest.param(
        body(tools=[{"name": "ok", "input_schema": {}}, {"name": "x"}]),
        "tools.1.input_schema",
        "tools.1.input_schema: required",
        id="tool-schema-missing",
    ),
    pytest.param(
        body(tools=[{"name": "x", "input_schema": [1]}]),
        "tools.0.input_schema",
        "must be a JSON object",
        id="tool-schema-array",
    ),
    pytest.param(
        body(tool_choice={"type": "tool"}), "tool_choice.name", "required", id="tool_choice-name"
    ),
    pytest.param(
        body(tool_choice={"type": "required"}),
        "tool_choice.type",
        "expected auto, any, tool or none",
        id="tool_choice-type",
    ),
    pytest.param(
        body(thinking={"type": "on"}),
        "thinking.type",
        "expected enabled, disabled or adaptive",
        id="thinking-type",
    ),
    pytest.param(
        body(thinking={"type": "enabled", "budget_tokens": "lots"}),
        "thinking.budget_tokens",
        "expected `int`",
        id="thinking-budget",
    ),
    pytest.param(
        body(output_config={"format": {"type": "json_schema"}}),
        "output_config.format.schema",
        "required",
        id="format-schema",
    ),
    pytest.param(body(metadata={"user_id": 5}), "metadata.user_id", "expected `str`", id="user_id"),
    pytest.param(
        body(stop_sequences="END"), "stop_sequences", "expected `array`", id="stop_sequences"
    ),
    pytest.param(body(temperature="hot"), "temperature", "expected `float`", id="temperature"),
]


@pytest.mark.parametrize(("raw", "path", "fragment"), ERROR_CASES)
def test_validation_errors_name_their_path(raw: bytes, path: str | None, fragment: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        codec.decode_request(raw)
    err = info.value
    assert err.path == path
    assert fragment in err.message
    if path is not None:
        assert err.message.startswith(f"{path}: ")
    assert SECRET not in err.message
    assert err.status_hint == 400 and err.kind is ErrorKind.INVALID_REQUEST
    assert err.__cause__ is None  # no msgspec error (with client values) chained


def test_count_tokens_does_not_require_max_tokens() -> None:
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"system":"s"}'
    req = codec.decode_count_tokens_request(raw)
    assert req.max_tokens is None and req.system == [ir.TextBlock(text="s")]
    with pytest.raises(ClientRequestError, match="^max_tokens: required$"):
        codec.decode_request(raw)
    with pytest.raises(ClientRequestError, match="^max_tokens: expected `int` >= 0"):
        codec.decode_count_tokens_request(body(max_tokens=-5))


# --- garbage in: only ClientRequestError out ----------------------------------------------

_KEYS = st.sampled_from(
    [
        "model",
        "max_tokens",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "system",
        "tools",
        "name",
        "input_schema",
        "tool_use_id",
        "source",
        "tool_choice",
        "thinking",
        "input",
        "x",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "user",
            "assistant",
            "system",
            "text",
            "image",
            "tool_result",
            "tool_use",
            "document",
            "base64",
            "url",
            "content",
            "auto",
            "tool",
            "enabled",
            "m",
            "",
        ]
    ),
)
_JSONISH = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_bytes_raise_only_client_request_error(raw: bytes) -> None:
    try:
        codec.decode_request(raw)
    except ClientRequestError as exc:
        assert exc.kind is ErrorKind.INVALID_REQUEST


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_KEYS, _JSONISH, max_size=6),
    st.lists(st.dictionaries(_KEYS, _JSONISH, max_size=5), max_size=3),
)
def test_jsonish_requests_raise_only_client_request_error(
    top: dict[str, Any], blocks: list[dict[str, Any]]
) -> None:
    # Half-valid shapes reach the per-block and per-tool decoders.
    candidates = [
        top,
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": blocks}], **top},
    ]
    for candidate in candidates:
        for decode in (codec.decode_request, codec.decode_count_tokens_request):
            try:
                decode(json.dumps(candidate).encode())
            except ClientRequestError as exc:
                assert exc.message


def test_deeply_nested_body_is_a_client_error() -> None:
    with pytest.raises(ClientRequestError):
        codec.decode_request(b'{"model":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


# --- the SDK as a request oracle ----------------------------------------------------------


def sdk_client(handler: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="test-key",
        base_url="http://bridge.test",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


SDK_MESSAGES: list[Any] = [
    {"role": "user", "content": "run ls"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I should list", "signature": "c2ln"},
            {"type": "text", "text": "Listing."},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": [{"type": "text", "text": "a.txt"}, {"type": "image", "source": B64}],
            },
            {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        ],
    },
]


def test_requests_built_by_the_sdk_decode() -> None:
    captured: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        captured.append(request.content)
        resp = ir.Response(id="msg_1", model="m", content=[ir.TextBlock(text="ok")])
        return httpx2.Response(200, content=codec.encode_response(resp))

    client = sdk_client(handler)
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=4096,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=SDK_MESSAGES,
        tools=[
            {"name": "Bash", "input_schema": {"type": "object", "properties": {}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        ],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "u1"},
        stop_sequences=["STOP"],
    )
    client.messages.count_tokens(model="claude-sonnet-4-5", messages=SDK_MESSAGES, system="s")
    req = codec.decode_request(captured[0])
    assert req.max_tokens == 4096 and req.user_id == "u1" and req.stop_sequences == ["STOP"]
    assert [type(b) for b in req.messages[1].content] == [
        ir.ThinkingBlock,
        ir.TextBlock,
        ir.ToolUseBlock,
    ]
    result = req.messages[2].content[0]
    assert isinstance(result, ir.ToolResultBlock) and isinstance(result.content[1], ir.ImageBlock)
    assert req.tools[1].server_type == "web_search_20250305"
    counted = codec.decode_count_tokens_request(captured[1])
    assert counted.messages == req.messages and counted.max_tokens is None


def test_request_from_ir_round_trips() -> None:
    raw = body(
        system=[{"type": "text", "text": "sys", "cache_control": EPHEMERAL}],
        messages=SDK_MESSAGES
        + [
            {"role": "system", "content": "mid"},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "d"}]},
            {"role": "user", "content": [b for _, b in [(p.id, p.values[0]) for p in BLOCK_CASES]]},
        ],
        tools=[
            {"name": "Bash", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
        ],
        tool_choice={"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
        thinking={"type": "adaptive", "display": "summarized"},
        output_config={
            "effort": "low",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
        metadata={"user_id": "u"},
        stop_sequences=["S"],
        stream=True,
        top_k=3,
    )
    req = codec.decode_request(raw)
    encoded = codec.request_from_ir(req)
    assert codec.decode_request(encoded) == req
    as_json = json.loads(encoded)
    assert as_json["messages"][0]["content"] == "run ls"  # compact string form
    assert as_json["tools"][0]["input_schema"] == {"type": "object"}


def test_request_from_ir_fills_what_anthropic_requires() -> None:
    req = ir.Request(
        model="m",
        max_tokens=5,
        messages=[
            ir.Message(role="assistant", content=[ir.ThinkingBlock(thinking="t")]),
            ir.Message(
                role="user",
                content=[
                    ir.VideoBlock(source=ir.MediaSource(type="url", url="u")),
                    ir.TextBlock(text="x"),
                ],
            ),
        ],
        tools=[ir.Tool(name="t"), ir.Tool(name="d", input_schema={"type": "object"})],
    )
    out = json.loads(codec.request_from_ir(req))
    assert out["messages"][0]["content"] == [{"type": "thinking", "thinking": "t", "signature": ""}]
    assert out["messages"][1]["content"] == [{"type": "text", "text": "x"}]
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    assert out["tools"][1]["input_schema"] == {"type": "object"}


# --- responses -------------------------------------------------------------------------------

RESPONSE = ir.Response(
    id="msg_01",
    model="claude-sonnet-4-5",
    content=[
        ir.ThinkingBlock(thinking="Let me think.\nOK", signature="sig"),
        ir.TextBlock(text='I\'ll run ls — ünïcode "quoted"\n'),
        ir.ToolUseBlock(
            id="toolu_01", name="Bash", input={"command": "ls -la", "n": [1, 2.5, None]}
        ),
    ],
    stop_reason=ir.StopReason.TOOL_USE,
    usage=ir.Usage(
        input_tokens=100, output_tokens=42, cache_read_input_tokens=7, cache_creation_input_tokens=3
    ),
)


def test_encode_response_is_an_sdk_message() -> None:
    raw = codec.encode_response(RESPONSE)
    msg = anthropic.types.Message.model_validate_json(raw)
    assert (msg.id, msg.model, msg.role, msg.type) == (
        "msg_01",
        "claude-sonnet-4-5",
        "assistant",
        "message",
    )
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.stop_reason == "tool_use" and msg.stop_sequence is None
    assert msg.usage.input_tokens == 100 and msg.usage.output_tokens == 42
    assert msg.usage.cache_read_input_tokens == 7 and msg.usage.cache_creation_input_tokens == 3
    doc = json.loads(raw)
    assert doc["content"][1] == {"type": "text", "text": RESPONSE.content[1].text}  # no citations
    assert doc["content"][2] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "Bash",
        "input": {"command": "ls -la", "n": [1, 2.5, None]},
    }
    assert "stop_sequence" in doc and doc["stop_sequence"] is None


def test_encode_response_signature_always_a_string_and_passthrough() -> None:
    unknown = {"type": "web_fetch_tool_result", "tool_use_id": "s", "content": {"x": 1}}
    resp = ir.Response(
        id="msg_2",
        model="m",
        content=[
            ir.ThinkingBlock(thinking="t"),
            ir.RedactedThinkingBlock(data="r"),
            ir.TextBlock(
                text="c",
                citations=[
                    {
                        "type": "char_location",
                        "cited_text": "c",
                        "document_index": 0,
                        "document_title": None,
                        "start_char_index": 0,
                        "end_char_index": 1,
                    }
                ],
            ),
            ir.UnknownBlock(original_type="web_fetch_tool_result", raw=unknown),
            ir.ImageBlock(source=ir.MediaSource(type="url", url="u")),  # request-only: dropped
        ],
        stop_reason=ir.StopReason.END_TURN,
    )
    doc = json.loads(codec.encode_response(resp))
    assert doc["content"][0] == {"type": "thinking", "thinking": "t", "signature": ""}
    assert doc["content"][1] == {"type": "redacted_thinking", "data": "r"}
    assert doc["content"][2]["citations"][0]["type"] == "char_location"
    assert doc["content"][3] == unknown
    assert len(doc["content"]) == 4
    assert isinstance(codec.response_from_ir(resp), codec.wire.Message)


def test_response_to_ir_round_trip_and_model_override() -> None:
    raw = codec.encode_response(RESPONSE)
    assert codec.response_to_ir(raw) == RESPONSE
    assert codec.response_to_ir(raw, model="asked-for").model == "asked-for"


def test_response_to_ir_tolerates_new_blocks_and_usage_details() -> None:
    raw = json.dumps(
        {
            "id": "msg_3",
            "type": "message",
            "role": "assistant",
            "model": "glm-4.6",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "container_upload", "file_id": "f"},
            ],
            "stop_reason": "pause_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 5,
                "output_tokens": 9,
                "cache_read_input_tokens": None,
                "output_tokens_details": {"thinking_tokens": 4},
            },
        }
    ).encode()
    resp = codec.response_to_ir(raw)
    assert resp.content[1] == ir.UnknownBlock(
        original_type="container_upload", raw={"type": "container_upload", "file_id": "f"}
    )
    assert resp.stop_reason is ir.StopReason.PAUSE_TURN
    assert resp.usage == ir.Usage(input_tokens=5, output_tokens=9, reasoning_tokens=4)


@pytest.mark.parametrize(
    "raw",
    [b"", b"<html>", b"[]", b'{"id":"m"}', b'{"id":"m","content":[{"type":"text"}]}'],
)
def test_response_to_ir_bad_bytes_raise_upstream_protocol_error(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        codec.response_to_ir(raw)


# --- errors -----------------------------------------------------------------------------------

ERROR_TYPES = [
    (ErrorKind.INVALID_REQUEST, 400, "invalid_request_error"),
    (ErrorKind.AUTHENTICATION, 401, "authentication_error"),
    (ErrorKind.BILLING, 402, "billing_error"),
    (ErrorKind.PERMISSION, 403, "permission_error"),
    (ErrorKind.NOT_FOUND, 404, "not_found_error"),
    (ErrorKind.REQUEST_TOO_LARGE, 413, "request_too_large"),
    (ErrorKind.RATE_LIMIT, 429, "rate_limit_error"),
    (ErrorKind.API_ERROR, 500, "api_error"),
    (ErrorKind.OVERLOADED, 529, "overloaded_error"),
    (ErrorKind.TIMEOUT, 504, "timeout_error"),
]


@pytest.mark.parametrize(("kind", "status", "wire_type"), ERROR_TYPES)
def test_encode_error(kind: ErrorKind, status: int, wire_type: str) -> None:
    got_status, raw = codec.encode_error(UpstreamError("boom", kind=kind), request_id="req_1")
    assert got_status == status
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": wire_type, "message": "boom"},
        "request_id": "req_1",
    }


def test_encode_error_uses_status_hint_and_omits_missing_request_id() -> None:
    status, raw = codec.encode_error(ClientRequestError("bad", path="model", status_hint=422))
    assert status == 422
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "model: bad"},
    }


def test_sdk_raises_the_matching_exception_for_an_error_body() -> None:
    status, raw = codec.encode_error(UpstreamError("busy", kind=ErrorKind.OVERLOADED))
    client = sdk_client(lambda request: httpx2.Response(status, content=raw))
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert info.value.body == json.loads(raw)


# --- the stream encoder -------------------------------------------------------------------------


def stream_events(resp: ir.Response, pieces: int = 3) -> list[ev.Event]:
    """The IR event stream a decoder would emit for ``resp`` (content split in ``pieces``)."""

    def split(s: str) -> list[str]:
        step = max(1, -(-len(s) // pieces))
        return [s[i : i + step] for i in range(0, len(s), step)] or [""]

    out: list[ev.Event] = [
        ev.MessageStart(
            id=resp.id, model=resp.model, usage=ir.Usage(input_tokens=resp.usage.input_tokens)
        ),
        ev.Ping(),
    ]
    for i, block in enumerate(resp.content):
        match block:
            case ir.ThinkingBlock():
                out.append(ev.BlockStart(index=i, block=ir.ThinkingBlock(thinking="")))
                out += [ev.ThinkingDelta(index=i, thinking=p) for p in split(block.thinking)]
                out.append(ev.SignatureDelta(index=i, signature=block.signature or ""))
            case ir.TextBlock():
                out.append(ev.BlockStart(index=i, block=ir.TextBlock(text="")))
                out += [ev.TextDelta(index=i, text=p) for p in split(block.text)]
            case ir.ToolUseBlock():
                shell = ir.ToolUseBlock(id=block.id, name=block.name, input={})
                out.append(ev.BlockStart(index=i, block=shell))
                args = json.dumps(block.input)
                out += [ev.InputJsonDelta(index=i, partial_json=p) for p in split(args)]
            case _:
                out.append(ev.BlockStart(index=i, block=block))
        out.append(ev.BlockStop(index=i))
    out.append(
        ev.MessageDelta(
            stop_reason=resp.stop_reason, usage=resp.usage, stop_sequence=resp.stop_sequence
        )
    )
    out.append(ev.MessageStop())
    return out


def encode_all(events: list[ev.Event]) -> bytes:
    enc = codec.StreamEncoder()
    out = b"".join(enc.feed(e) for e in events)
    tail = enc.flush()
    assert tail == b""
    validate_anthropic_stream(out)  # the library's own grammar validator agrees
    return out


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    frames = raw.decode().split("\n\n")
    assert frames[-1] == ""  # every frame is terminated
    parsed = []
    for frame in frames[:-1]:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        parsed.append((event_line[7:], json.loads(data_line[6:])))
    return parsed


_EVENT_ADAPTER: pydantic.TypeAdapter[RawMessageStreamEvent] = pydantic.TypeAdapter(
    RawMessageStreamEvent
)


def accumulate(raw: bytes) -> anthropic.types.Message:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in parse_sse(raw):
        assert name == data["type"]
        if name in ("ping", "error"):
            continue
        event = _EVENT_ADAPTER.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    return anthropic.types.Message.model_validate(snapshot.model_dump())


def test_stream_frames_event_name_equals_type_and_no_done() -> None:
    raw = encode_all(stream_events(RESPONSE))
    names = [name for name, _ in parse_sse(raw)]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert b"[DONE]" not in raw
    start = parse_sse(raw)[0][1]["message"]
    assert (
        start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    )
    assert start["usage"] == {
        "input_tokens": 100,
        "output_tokens": 1,  # never 0 in message_start
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    blocks = [d["content_block"] for n, d in parse_sse(raw) if n == "content_block_start"]
    assert blocks == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}},
    ]
    delta = [d for n, d in parse_sse(raw) if n == "message_delta"][0]
    assert delta == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "output_tokens": 42,
            "input_tokens": 100,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 7,
        },
    }


def test_stream_accumulates_to_the_non_stream_response() -> None:
    expected = anthropic.types.Message.model_validate_json(codec.encode_response(RESPONSE))
    assert accumulate(encode_all(stream_events(RESPONSE))) == expected


def test_stream_through_the_sdk_client_equals_the_non_stream_response() -> None:
    raw = encode_all(stream_events(RESPONSE, pieces=7))
    headers = {"content-type": "text/event-stream"}
    client = sdk_client(lambda request: httpx2.Response(200, headers=headers, content=raw))
    with client.messages.stream(
        model="m", max_tokens=9, messages=[{"role": "user", "content": "x"}]
    ) as s:
        final = s.get_final_message()
    expected = anthropic.types.Message.model_validate_json(codec.encode_response(RESPONSE))
    assert anthropic.types.Message.model_validate(final.model_dump()) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.text(max_size=40),
    st.text(max_size=40),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3),
    st.integers(1, 9),
)
def test_stream_equals_non_stream_for_any_content(
    thinking: str, text: str, args: dict[str, Any], pieces: int
) -> None:
    resp = ir.Response(
        id="msg_h",
        model="m",
        content=[
            ir.ThinkingBlock(thinking=thinking, signature="s"),
            ir.TextBlock(text=text),
            ir.ToolUseBlock(id="toolu_h", name="f", input=args),
        ],
        stop_reason=ir.StopReason.TOOL_USE,
        usage=ir.Usage(input_tokens=3, output_tokens=8),
    )
    expected = anthropic.types.Message.model_validate_json(codec.encode_response(resp))
    assert accumulate(encode_all(stream_events(resp, pieces))) == expected


def test_complete_blocks_and_tool_shells_with_input() -> None:
    search = ir.WebSearchToolResultBlock(
        tool_use_id="srvtoolu_1",
        content=[{"type": "web_search_result", "url": "u", "title": "t", "encrypted_content": "e"}],
    )
    events: list[ev.Event] = [
        ev.MessageStart(id="msg_c", model="m", usage=ir.Usage()),
        ev.BlockStart(index=0, block=ir.RedactedThinkingBlock(data="opaque")),
        ev.BlockStop(index=0),
        ev.BlockStart(
            index=1,
            block=ir.ServerToolUseBlock(id="srvtoolu_1", name="web_search", input={"query": "q"}),
        ),
        ev.BlockStop(index=1),
        ev.BlockStart(index=2, block=search),
        ev.BlockStop(index=2),
        ev.BlockStart(index=3, block=ir.ToolUseBlock(id="toolu_9", name="f", input={"a": 1})),
        ev.BlockStop(index=3),
        ev.MessageDelta(stop_reason=ir.StopReason.END_TURN, usage=ir.Usage(output_tokens=5)),
        ev.MessageStop(),
    ]
    raw = encode_all(events)
    frames = parse_sse(raw)
    # tool input is replayed as one input_json_delta right after an empty-input start
    assert frames[3][1]["content_block"]["input"] == {}
    assert frames[4][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"query":"q"}'}
    msg = accumulate(raw)
    assert [b.type for b in msg.content] == [
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "tool_use",
    ]
    assert msg.content[1].input == {"query": "q"}  # type: ignore[union-attr]
    assert msg.content[3].input == {"a": 1}  # type: ignore[union-attr]


def test_stream_error_event_is_terminal_and_the_sdk_raises() -> None:
    enc = codec.StreamEncoder()
    raw = enc.feed(ev.MessageStart(id="msg_e", model="m", usage=ir.Usage()))
    raw += enc.feed(ev.BlockStart(index=0, block=ir.TextBlock(text="")))
    raw += enc.feed(ev.TextDelta(index=0, text="partial"))
    err = enc.feed(ev.StreamError(kind=ErrorKind.OVERLOADED, message="Overloaded"))
    assert err == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    assert enc.flush() == b""
    with pytest.raises(StreamStateError):
        enc.feed(ev.TextDelta(index=0, text="late"))
    with pytest.raises(StreamStateError):  # sticky
        enc.flush()
    headers = {"content-type": "text/event-stream"}
    client = sdk_client(lambda request: httpx2.Response(200, headers=headers, content=raw + err))
    messages: Any = [{"role": "user", "content": "x"}]
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(model="m", max_tokens=9, messages=messages) as s,
    ):
        s.get_final_message()
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_empty_text_and_thinking_deltas_are_dropped() -> None:
    enc = codec.StreamEncoder()
    enc.feed(ev.MessageStart(id="msg_d", model="m", usage=ir.Usage()))
    enc.feed(ev.BlockStart(index=0, block=ir.ThinkingBlock(thinking="")))
    assert enc.feed(ev.ThinkingDelta(index=0, thinking="")) == b""
    assert enc.feed(ev.ThinkingDelta(index=0, thinking="a")) != b""
    enc.feed(ev.BlockStop(index=0))
    enc.feed(ev.BlockStart(index=1, block=ir.TextBlock(text="")))
    assert enc.feed(ev.TextDelta(index=1, text="")) == b""
    assert b'"index":1,"delta":{"type":"text_delta","text":"b"}' in enc.feed(
        ev.TextDelta(index=1, text="b")
    )


def test_error_event_from_exception() -> None:
    raw = codec.error_event(UpstreamError("slow down", kind=ErrorKind.RATE_LIMIT))
    assert parse_sse(raw) == [
        ("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    ]


def test_flush_of_an_unfinished_stream_emits_an_error() -> None:
    enc = codec.StreamEncoder()
    enc.feed(ev.MessageStart(id="msg_u", model="m", usage=ir.Usage()))
    enc.feed(ev.BlockStart(index=0, block=ir.TextBlock(text="")))
    tail = enc.flush()
    assert parse_sse(tail) == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "stream ended unexpectedly"},
            },
        )
    ]
    with pytest.raises(StreamStateError):
        enc.feed(ev.Ping())
    assert parse_sse(codec.StreamEncoder().flush())[0][0] == "error"  # nothing fed at all


START = ev.MessageStart(id="msg_x", model="m", usage=ir.Usage())
TEXT0 = ev.BlockStart(index=0, block=ir.TextBlock(text=""))
DONE = ev.MessageDelta(stop_reason=ir.StopReason.END_TURN, usage=ir.Usage())

MISUSE_CASES = [
    pytest.param([ev.TextDelta(index=0, text="x")], id="delta-before-start"),
    pytest.param([TEXT0], id="block-before-start"),
    pytest.param([START, START], id="two-starts"),
    pytest.param([START, ev.TextDelta(index=0, text="x")], id="delta-no-block"),
    pytest.param([START, TEXT0, ev.ThinkingDelta(index=0, thinking="x")], id="thinking-into-text"),
    pytest.param([START, TEXT0, ev.InputJsonDelta(index=0, partial_json="{")], id="json-into-text"),
    pytest.param([START, TEXT0, ev.SignatureDelta(index=0, signature="s")], id="sig-into-text"),
    pytest.param([START, TEXT0, ev.TextDelta(index=1, text="x")], id="wrong-index"),
    pytest.param([START, TEXT0, ev.BlockStart(index=1, block=ir.TextBlock(text=""))], id="nested"),
    pytest.param([START, ev.BlockStart(index=1, block=ir.TextBlock(text=""))], id="index-gap"),
    pytest.param([START, TEXT0, ev.BlockStop(index=0), TEXT0], id="index-reused"),
    pytest.param([START, TEXT0, ev.BlockStop(index=1)], id="stop-wrong-index"),
    pytest.param([START, TEXT0, DONE], id="message-delta-with-open-block"),
    pytest.param([START, ev.MessageStop()], id="stop-without-message-delta"),
    pytest.param([START, DONE, ev.MessageStop(), ev.Ping()], id="after-stop"),
    pytest.param(
        [
            START,
            ev.BlockStart(index=0, block=ir.ImageBlock(source=ir.MediaSource(type="url", url="u"))),
        ],
        id="request-only-block",
    ),
]


@pytest.mark.parametrize("events", MISUSE_CASES)
def test_grammar_violations_raise_and_stay_failed(events: list[ev.Event]) -> None:
    enc = codec.StreamEncoder()
    for event in events[:-1]:
        enc.feed(event)
    with pytest.raises(StreamStateError):
        enc.feed(events[-1])
    with pytest.raises(StreamStateError):
        enc.feed(ev.Ping())
    with pytest.raises(StreamStateError):
        enc.flush()


def test_stream_error_before_message_start_is_allowed() -> None:
    enc = codec.StreamEncoder()
    raw = enc.feed(ev.StreamError(kind=ErrorKind.TIMEOUT, message="upstream timed out"))
    assert parse_sse(raw)[0][1]["error"]["type"] == "timeout_error"
    assert enc.flush() == b""


def test_numbers_beyond_float_range_are_kept_not_a_crash() -> None:
    """1E+400 is valid JSON: it must neither fail decoding nor escape as a msgspec error."""
    from decimal import Decimal

    body = (
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},'
        b'{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f",'
        b'"input":{"a":1E+400}},{"type":"brand_new_block","n":-1e999}]},'
        b'{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"ok"}]}]}'
    )
    req = codec.decode_request(body)
    tool_use, unknown = req.messages[1].content
    assert isinstance(tool_use, ir.ToolUseBlock) and tool_use.input == {"a": Decimal("1E+400")}
    assert isinstance(unknown, ir.UnknownBlock) and unknown.raw["n"] == Decimal("-1E+999")
    # and it goes back out as the same JSON number
    assert b'"a":1E+400' in codec.request_from_ir(req)


def test_error_headers_tell_sdks_when_not_to_retry() -> None:
    """Exhausted quota and bad keys carry x-should-retry: false; throttling carries retry-after."""
    from glmbridge.protocols import openai

    quota = openai.error_from_upstream(429, b'{"error":{"code":"1113","message":"Insufficient"}}')
    throttled = openai.error_from_upstream(
        429, b'{"error":{"code":"1302","message":"busy"}}', retry_after=2.2
    )
    auth = openai.error_from_upstream(401, b'{"error":{"code":"1002","message":"bad token"}}')
    assert codec.error_headers(quota) == {"x-should-retry": "false"}
    assert codec.error_headers(throttled) == {"retry-after": "3"}
    assert codec.error_headers(auth) == {"x-should-retry": "false"}
    assert codec.error_headers(ClientRequestError("bad", path="model")) == {}
