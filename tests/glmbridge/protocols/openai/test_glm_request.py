"""IR request -> GLM / OpenAI Chat Completions body: one table row per rule.

Each case gives an IR request (as JSON, decoded with msgspec), the model spec and
dialect, and the exact wire JSON expected (golden style, written by hand from
wire-specs A.4-A.6 and E).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.exchange import adapt_request
from glmbridge.protocols import openai as oa
from glmbridge.routing import DEFAULT_MODELS, ModelSpec
from tests.strategies import ir_requests

TEXT = ModelSpec(id="glm-4.6", context_window=200_000, max_output=131_072, tool_stream=True)
VISION = ModelSpec(
    id="glm-4.6v", context_window=128_000, max_output=32_768, vision=True, video=True, files=True
)
NO_THINK = ModelSpec(id="glm-4-32b", context_window=128_000, max_output=16_384, thinking="none")
M = "glm-4.6"


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(t: str, **kw: Any) -> dict[str, Any]:
    return {"type": "text", "text": t, **kw}


def tool_use(id: str, name: str, inp: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": inp}


def tool_result(id: str, *content: Any, is_error: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": id, "content": list(content)}
    if is_error:
        out["is_error"] = True
    return out


def image(data: str = "iVBORw0KGgo=", media: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


def call(id: str, name: str, args: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": args}}


def convert(req: dict[str, Any], spec: Any = TEXT, dialect: oa.Dialect = oa.GLM) -> dict[str, Any]:
    req = {"model": "claude-sonnet-4-5", **req}
    ir_req = msgspec.json.decode(json.dumps(req).encode(), type=ir.Request)
    wire = oa.request_from_ir(ir_req, model=M, spec=spec, dialect=dialect)
    return json.loads(oa.encode_request(wire))


HI = [user(text("hi"))]
HI_WIRE = [{"role": "user", "content": "hi"}]
TOOLS = [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}}]
TOOLS_WIRE = [
    {
        "type": "function",
        "function": {"name": "Bash", "description": "Run", "parameters": {"type": "object"}},
    }
]

# (id, IR request fields, spec, dialect, expected wire body minus "model")
CASES: list[tuple[str, dict[str, Any], Any, oa.Dialect, dict[str, Any]]] = [
    (
        "system_blocks_joined_empty_dropped",
        {
            "system": [text("A"), text("  "), text("B", cache_control={"type": "ephemeral"})],
            "messages": HI,
        },
        TEXT,
        oa.GLM,
        {"messages": [{"role": "system", "content": "A\n\nB"}, *HI_WIRE]},
    ),
    (
        "mid_conversation_system_becomes_reminder",
        {
            "system": [text("S")],
            "messages": [
                *HI,
                assistant(text("hello")),
                {"role": "system", "content": [text("R")]},
                user(text("next")),
            ],
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                {"role": "system", "content": "S"},
                *HI_WIRE,
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "<system-reminder>\nR\n</system-reminder>"},
                {"role": "user", "content": "next"},
            ]
        },
    ),
    (
        "user_text_blocks_one_string_whitespace_and_unknown_dropped",
        {
            "messages": [
                user(
                    text("a"),
                    text(" \n"),
                    {"type": "unknown", "original_type": "x", "raw": {"type": "x"}},
                    text("b"),
                )
            ]
        },
        TEXT,
        oa.GLM,
        {"messages": [{"role": "user", "content": "a\n\nb"}]},
    ),
    (
        "assistant_text_concatenated_thinking_to_reasoning_content",
        {
            "messages": [
                *HI,
                assistant(
                    {"type": "thinking", "thinking": "t1", "signature": "s"},
                    {"type": "redacted_thinking", "data": "xx"},
                    text("Hel"),
                    {"type": "thinking", "thinking": "t2"},
                    text("lo"),
                ),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {"role": "assistant", "content": "Hello", "reasoning_content": "t1t2"},
            ],
            # replayed reasoning is kept on the pay-as-you-go endpoints too (zai-fidelity 2.2)
            "thinking": {"type": "enabled", "clear_thinking": False},
        },
    ),
    (
        "openai_dialect_drops_reasoning_history",
        {"messages": [*HI, assistant({"type": "thinking", "thinking": "t"}, text("x"))]},
        TEXT,
        oa.OPENAI,
        {"messages": [*HI_WIRE, {"role": "assistant", "content": "x"}]},
    ),
    (
        "tool_only_turn_has_null_content_and_results_follow",
        {
            "messages": [
                *HI,
                assistant(
                    text(" "),
                    tool_use("call_1", "Bash", {"cmd": "ls"}),
                    tool_use("call_2", "Read", {}),
                ),
                user(
                    tool_result("call_2", text("B")),
                    tool_result("call_1", text("A1"), text("A2"), is_error=True),
                    text("now continue"),
                ),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        call("call_1", "Bash", '{"cmd":"ls"}'),
                        call("call_2", "Read", "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": "call_2", "content": "B"},
                {"role": "tool", "tool_call_id": "call_1", "content": "Error: A1\n\nA2"},
                {"role": "user", "content": "now continue"},
            ]
        },
    ),
    (
        "empty_tool_results",
        {
            "messages": [
                *HI,
                assistant(tool_use("c1", "f", {}), tool_use("c2", "g", {})),
                user(tool_result("c1"), tool_result("c2", is_error=True)),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("c1", "f", "{}"), call("c2", "g", "{}")],
                },
                # GLM rejects empty content (400/1213, zai-fidelity 2.16): a placeholder
                {"role": "tool", "tool_call_id": "c1", "content": "(no output)"},
                {"role": "tool", "tool_call_id": "c2", "content": "Error"},
            ]
        },
    ),
    (
        "orphans_repaired",
        {
            "messages": [
                *HI,
                assistant(tool_use("c1", "f", {})),
                user(tool_result("zz", text("late")), text("go")),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{}")]},
                {"role": "tool", "tool_call_id": "c1", "content": "(no result)"},
                {"role": "user", "content": "[tool result zz]\nlate\n\ngo"},
            ]
        },
    ),
    (
        "orphan_call_at_end_and_before_assistant",
        {"messages": [*HI, assistant(tool_use("c1", "f", {})), assistant(text("more"))]},
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{}")]},
                {"role": "tool", "tool_call_id": "c1", "content": "(no result)"},
                {"role": "assistant", "content": "more"},
            ]
        },
    ),
    (
        "reminder_between_call_and_result_is_deferred",
        {
            "messages": [
                *HI,
                assistant(tool_use("c1", "f", {})),
                {"role": "system", "content": [text("R")]},
                user(tool_result("c1", text("ok"))),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {"role": "assistant", "content": None, "tool_calls": [call("c1", "f", "{}")]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "user", "content": "<system-reminder>\nR\n</system-reminder>"},
            ]
        },
    ),
    (
        "image_in_tool_result_follows_as_user_message",
        {
            "messages": [
                *HI,
                assistant(tool_use("c1", "Screenshot", {})),
                user(tool_result("c1", text("shot"), image())),
            ]
        },
        VISION,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("c1", "Screenshot", "{}")],
                },
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": "shot\n\n[image returned by this tool follows in the next message]",
                },
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}}],
                },
            ]
        },
    ),
    (
        "image_in_tool_result_without_vision_is_placeholder",
        {
            "messages": [
                *HI,
                assistant(tool_use("c1", "Screenshot", {})),
                user(tool_result("c1", image())),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [call("c1", "Screenshot", "{}")],
                },
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": "[image omitted: the selected model cannot read images]",
                },
            ]
        },
    ),
    (
        "images_glm_bare_base64_and_url",
        {
            "messages": [
                user(
                    text("see"),
                    image(),
                    {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                )
            ]
        },
        VISION,
        oa.GLM,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see"},
                        {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                    ],
                }
            ]
        },
    ),
    (
        "images_openai_data_url",
        {"messages": [user(image(media="image/jpeg"))]},
        VISION,
        oa.OPENAI,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/jpeg;base64,iVBORw0KGgo="},
                        }
                    ],
                }
            ]
        },
    ),
    (
        "video_and_documents",
        {
            "messages": [
                user(
                    {"type": "video", "source": {"type": "url", "url": "https://x/v.mp4"}},
                    {
                        "type": "document",
                        "title": "Notes",
                        "source": {"type": "text", "media_type": "text/plain", "data": "abc"},
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://x/doc.pdf"}},
                    {
                        "type": "search_result",
                        "source": "https://s",
                        "title": "T",
                        "content": [text("snippet")],
                    },
                )
            ]
        },
        VISION,
        oa.GLM,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}},
                        {"type": "text", "text": "Notes\n\nabc"},
                        {"type": "file", "file": {"file_url": "https://x/doc.pdf"}},
                        {"type": "text", "text": "Search result: T\nSource: https://s\n\nsnippet"},
                    ],
                }
            ]
        },
    ),
    (
        "video_without_video_support_is_placeholder",
        {"messages": [user({"type": "video", "source": {"type": "url", "url": "https://x/v"}})]},
        TEXT,
        oa.GLM,
        {
            "messages": [
                {
                    "role": "user",
                    "content": "[video omitted: the selected model cannot read videos]",
                }
            ]
        },
    ),
    (
        "thinking_enabled_and_adaptive",
        {"messages": HI, "thinking": {"type": "adaptive"}},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE, "thinking": {"type": "enabled"}},
    ),
    (
        "thinking_disabled",
        {"messages": HI, "thinking": {"type": "disabled"}},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE, "thinking": {"type": "disabled"}},
    ),
    (
        "thinking_not_sent_for_spec_none_or_openai",
        {"messages": HI, "thinking": {"type": "enabled", "budget_tokens": 2048}},
        NO_THINK,
        oa.GLM,
        {"messages": HI_WIRE},
    ),
    (
        "thinking_not_sent_for_openai",
        {"messages": HI, "thinking": {"type": "enabled", "budget_tokens": 2048}},
        TEXT,
        oa.OPENAI,
        {"messages": HI_WIRE},
    ),
    (
        "max_tokens_clamped_and_four_stops_kept",  # OAS stop maxItems 4 (zai-fidelity 2.6)
        {"messages": HI, "max_tokens": 64_000, "stop_sequences": ["A", "B", "C", "D", "E"]},
        NO_THINK,
        oa.GLM,
        {"messages": HI_WIRE, "max_tokens": 16_384, "stop": ["A", "B", "C", "D"]},
    ),
    (
        "max_tokens_at_least_one_openai_field",
        {"messages": HI, "max_tokens": 0, "stop_sequences": ["A", "B"]},
        TEXT,
        oa.OPENAI,
        {"messages": HI_WIRE, "max_completion_tokens": 1, "stop": ["A", "B"]},
    ),
    (
        "temperature_zero_is_greedy",
        {"messages": HI, "temperature": 0.0, "top_p": 0.5},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE, "do_sample": False},
    ),
    (
        "sampling_clamped_glm",
        {"messages": HI, "temperature": 1.5, "top_p": 0.0, "top_k": 5},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE, "temperature": 1.0, "top_p": 0.01},
    ),
    (
        "sampling_openai_range",
        {"messages": HI, "temperature": 1.5},
        TEXT,
        oa.OPENAI,
        {"messages": HI_WIRE, "temperature": 1.5},
    ),
    (
        "tools_auto_and_tool_stream",
        {"messages": HI, "tools": TOOLS, "stream": True},
        TEXT,
        oa.GLM,
        {
            "messages": HI_WIRE,
            "stream": True,
            "tools": TOOLS_WIRE,
            "tool_choice": "auto",
            "tool_stream": True,
        },
    ),
    (
        "no_tool_stream_without_spec_support",
        {"messages": HI, "tools": TOOLS, "stream": True},
        VISION,
        oa.GLM,
        {"messages": HI_WIRE, "stream": True, "tools": TOOLS_WIRE, "tool_choice": "auto"},
    ),
    (
        "tool_choice_none_omits_tools_glm",
        {"messages": HI, "tools": TOOLS, "tool_choice": {"type": "none"}},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE},
    ),
    (
        "tool_choice_named_emulated_by_an_instruction_glm",
        {
            "messages": HI,
            "tools": TOOLS,
            "tool_choice": {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                {"role": "system", "content": "In this response you must call the `Bash` tool."},
                *HI_WIRE,
            ],
            "tools": TOOLS_WIRE,
            "tool_choice": "auto",
        },
    ),
    (
        "tool_choice_any_emulated_after_the_system_prompt_glm",
        {
            "messages": HI,
            "system": [{"type": "text", "text": "Be brief."}],
            "tools": TOOLS,
            "tool_choice": {"type": "any"},
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Be brief.\n\n"
                    "In this response you must call at least one of the available tools.",
                },
                *HI_WIRE,
            ],
            "tools": TOOLS_WIRE,
            "tool_choice": "auto",
        },
    ),
    (
        "tool_choice_openai_named_and_parallel",
        {
            "messages": HI,
            "tools": TOOLS,
            "tool_choice": {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
        },
        TEXT,
        oa.OPENAI,
        {
            "messages": HI_WIRE,
            "tools": TOOLS_WIRE,
            "tool_choice": {"type": "function", "function": {"name": "Bash"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        "tool_choice_openai_any_none",
        {"messages": HI, "tools": TOOLS, "tool_choice": {"type": "any"}, "stream": True},
        TEXT,
        oa.OPENAI,
        {
            "messages": HI_WIRE,
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": TOOLS_WIRE,
            "tool_choice": "required",
        },
    ),
    (
        "server_tools_dropped",
        {
            "messages": HI,
            "tools": [
                {
                    "name": "web_search",
                    "server_type": "web_search_20250305",
                    "config": {"max_uses": 5},
                },
                {"name": "code_execution", "server_type": "code_execution_20250522"},
                {"name": "NoSchema"},
            ],
        },
        TEXT,
        oa.GLM,
        {
            "messages": HI_WIRE,
            "tools": [{"type": "function", "function": {"name": "NoSchema"}}],
            "tool_choice": "auto",
        },
    ),
    (
        "user_id_glm_length_rules",
        {"messages": HI, "user_id": "user_abc"},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE, "user_id": "user_abc"},
    ),
    (
        "user_id_too_short_not_sent",
        {"messages": HI, "user_id": "abc"},
        TEXT,
        oa.GLM,
        {"messages": HI_WIRE},
    ),
    (
        "user_id_openai_field",
        {"messages": HI, "user_id": "user_abc"},
        TEXT,
        oa.OPENAI,
        {"messages": HI_WIRE, "user": "user_abc"},
    ),
    (
        "json_schema_becomes_json_object_plus_system_note",
        {
            "system": [text("S")],
            "messages": HI,
            "response_format": {"type": "json_schema", "schema": {"type": "object"}},
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                {
                    "role": "system",
                    "content": "S\n\nRespond only with a JSON object that "
                    'conforms to this JSON Schema:\n{"type":"object"}',
                },
                *HI_WIRE,
            ],
            "response_format": {"type": "json_object"},
        },
    ),
    (
        "json_schema_openai",
        {
            "messages": HI,
            "response_format": {"type": "json_schema", "name": "R", "schema": {"type": "object"}},
        },
        TEXT,
        oa.OPENAI,
        {
            "messages": HI_WIRE,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "R", "schema": {"type": "object"}},
            },
        },
    ),
    (
        "web_search_history_becomes_text_and_server_tool_use_dropped",
        {
            "messages": [
                *HI,
                assistant(
                    {
                        "type": "server_tool_use",
                        "id": "srv_1",
                        "name": "web_search",
                        "input": {"q": "x"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": "srv_1",
                        "content": [
                            {
                                "type": "web_search_result",
                                "title": "X",
                                "url": "https://x",
                                "encrypted_content": "e",
                            }
                        ],
                    },
                    text("Found it."),
                ),
            ]
        },
        TEXT,
        oa.GLM,
        {
            "messages": [
                *HI_WIRE,
                {
                    "role": "assistant",
                    "content": "Web search results:\n- X (https://x)\n\nFound it.",
                },
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("req", "spec", "dialect", "expected"),
    [pytest.param(r, s, d, e, id=i) for i, r, s, d, e in CASES],
)
def test_request_conversion(
    req: dict[str, Any], spec: Any, dialect: oa.Dialect, expected: dict[str, Any]
) -> None:
    assert convert(req, spec, dialect) == {"model": M, **expected}


@pytest.mark.parametrize(
    ("req", "path"),
    [
        (
            {
                "messages": [
                    user(
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0=",
                            },
                        }
                    )
                ]
            },
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    *HI,
                    assistant(tool_use("c1", "f", {})),
                    user(
                        tool_result(
                            "c1",
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x/a.pdf"},
                            },
                        )
                    ),
                ]
            },
            "messages.2.content.0.content.0",
        ),
        (
            {
                "messages": [
                    user(
                        text("x"),
                        {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                    )
                ]
            },
            "messages.0.content.1",
        ),
    ],
)
def test_unsendable_content_is_a_client_error(req: dict[str, Any], path: str) -> None:
    with pytest.raises(ClientRequestError) as info:
        convert(req, VISION if "image" in json.dumps(req) else TEXT)
    assert info.value.path == path and info.value.message.startswith(path)


def test_pdf_with_vision_base64_becomes_data_url_file_part() -> None:
    req = {
        "messages": [
            user(
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": "JVBERi0=",
                    },
                }
            )
        ]
    }
    # the unified file part with file_data (OAS; zai-fidelity 2.15), not legacy file_url
    assert convert(req, VISION)["messages"][0]["content"] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    ]


def test_too_many_tools_is_a_client_error() -> None:
    tools = [{"name": f"t{i}", "input_schema": {"type": "object"}} for i in range(129)]
    with pytest.raises(ClientRequestError, match="at most 128"):
        convert({"messages": HI, "tools": tools})


def test_input_schema_raw_is_passed_through_byte_for_byte() -> None:
    schema = b'{"type": "object",  "properties": {"x": {"type": "string"}}, "$comment": "\\u00e9"}'
    tool = ir.Tool(name="T", input_schema=msgspec.Raw(schema))
    req = ir.Request(
        model="m",
        messages=[ir.Message(role="user", content=[ir.TextBlock(text="x")])],
        tools=[tool],
    )
    body = oa.encode_request(oa.request_from_ir(req, model=M, spec=TEXT))
    assert b'"parameters":' + schema in body


def test_nothing_anthropic_only_leaks() -> None:
    body = convert(
        {
            "system": [text("S", cache_control={"type": "ephemeral", "ttl": "1h"})],
            "messages": [user(text("x", cache_control={"type": "ephemeral"}))],
            "tools": [{**TOOLS[0], "cache_control": {"type": "ephemeral"}}],
            "effort": "high",
            "top_k": 3,
        }
    )
    flat = json.dumps(body)
    for word in ("cache_control", "ephemeral", "effort", "top_k", "metadata"):
        assert word not in flat


def test_dropped_content_is_logged_without_prompt_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="glmbridge")
    convert(
        {
            "messages": [
                user(
                    text("SECRET-PROMPT"),
                    image(),
                    {
                        "type": "unknown",
                        "original_type": "container_upload",
                        "raw": {"secret": "SECRET-RAW"},
                    },
                )
            ]
        }
    )
    assert "container_upload" in caplog.text and "messages.0.content.1" in caplog.text
    assert "SECRET" not in caplog.text


def test_conversion_of_a_large_request_is_fast() -> None:
    # ~76 KB, 24 tools (Claude Code sized). Target: decode + convert + encode no slower
    # than json.loads + json.dumps of the same bytes (generous 3x bound against CI noise).
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 200} for i in range(12)},
    }
    tools = [
        {"name": f"tool{i}", "description": "x" * 400, "input_schema": schema} for i in range(24)
    ]
    messages = [user(text("q" * 500)), assistant(text("a" * 500))] * 10 + [user(text("go"))]
    raw = json.dumps(
        {
            "model": "m",
            "system": [text("s" * 3000)],
            "messages": messages,
            "tools": tools,
            "max_tokens": 32000,
        }
    ).encode()
    assert len(raw) > 70_000
    decoder = msgspec.json.Decoder(ir.Request)

    def ours() -> bytes:
        req = decoder.decode(raw)
        return oa.encode_request(oa.request_from_ir(req, model=M, spec=TEXT))

    def stdlib() -> str:
        return json.dumps(json.loads(raw))

    def best(fn: Any) -> float:
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    assert best(ours) <= 3 * best(stdlib)


def test_long_user_id_is_sent_as_a_stable_digest() -> None:
    # Claude Code's metadata.user_id is a ~150-char JSON document; GLM takes 6-128 chars.
    long_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s" * 36})
    first = convert({"messages": HI, "user_id": long_id})["user_id"]
    again = convert({"messages": HI, "user_id": long_id})["user_id"]
    other = convert({"messages": HI, "user_id": long_id.replace("s", "t")})["user_id"]
    assert 6 <= len(first) <= 128
    assert first == again != other
    assert "d" * 64 not in first


# --- thinking and effort adapted to the routed model (issue 11) -------------------------------

GLM53 = DEFAULT_MODELS["glm-5.3"]
GLM52 = DEFAULT_MODELS["glm-5.2"]


def adapted(req: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """The wire body after the exchange's protocol-independent adaptation."""
    req = {"model": "claude-opus-4-5", **req}
    ir_req = adapt_request(msgspec.json.decode(json.dumps(req).encode(), type=ir.Request), spec)
    return json.loads(oa.encode_request(oa.request_from_ir(ir_req, model=spec.id, spec=spec)))


@pytest.mark.parametrize(
    ("spec", "effort", "sent"),
    [
        (GLM53, "low", "low"),
        (GLM53, "medium", "high"),  # 5.3 accepts only low/high/max (THINK53)
        (GLM53, "high", "high"),
        (GLM53, "max", "max"),
        (GLM53, "xhigh", "max"),
        (GLM52, "medium", "medium"),
        (GLM52, "xhigh", "xhigh"),
        (TEXT, "high", None),  # glm-4.6: no reasoning_effort ("GLM-5.2 and above")
        (GLM53, None, None),
    ],
)
def test_effort_becomes_reasoning_effort_where_supported(
    spec: ModelSpec, effort: str | None, sent: str | None
) -> None:
    body = adapted({"messages": HI, "effort": effort}, spec)
    assert body.get("reasoning_effort") == sent


def test_thinking_disabled_is_never_sent_to_an_always_thinking_model() -> None:
    # GLM-5.3 answers 400/1210 "this model always thinks" (farion1231/cc-switch#6737): the
    # lowest effort is asked instead, unless the client chose one.
    body = adapted({"messages": HI, "thinking": {"type": "disabled"}}, GLM53)
    assert "thinking" not in body and body["reasoning_effort"] == "low"
    body = adapted({"messages": HI, "thinking": {"type": "disabled"},
                    "effort": "high"}, GLM53)  # fmt: skip
    assert "thinking" not in body and body["reasoning_effort"] == "high"
    # a model that can stop thinking gets disabled, and no effort
    body = adapted({"messages": HI, "thinking": {"type": "disabled"},
                    "effort": "high"}, GLM52)  # fmt: skip
    assert body["thinking"] == {"type": "disabled"} and "reasoning_effort" not in body


def test_clear_thinking_false_only_when_reasoning_is_replayed() -> None:
    history = [*HI, assistant({"type": "thinking", "thinking": "t", "signature": "s"},
                              text("x")), user(text("more"))]  # fmt: skip
    enabled = {"type": "enabled", "budget_tokens": 2048}
    assert convert({"messages": history, "thinking": enabled})["thinking"] == {
        "type": "enabled", "clear_thinking": False}  # fmt: skip
    assert convert({"messages": HI, "thinking": enabled})["thinking"] == {"type": "enabled"}
    # thinking off: nothing to keep, disabled is sent as is
    assert convert({"messages": history, "thinking": {"type": "disabled"}})["thinking"] == {
        "type": "disabled"}  # fmt: skip
    assert "thinking" not in convert({"messages": history}, NO_THINK)


def test_no_empty_content_is_ever_sent() -> None:
    # GLM-5 answers 400/1213 for content "" (earendil-works/pi#3309); the coding endpoint
    # rejects an empty text part (zed-industries/zed#38153).
    body = convert({"messages": [
        user(text(""), text("  "), {"type": "document",
                                    "source": {"type": "text", "data": ""}}, text("q")),
        assistant({"type": "thinking", "thinking": "only thought", "signature": "s"}),
        user(text("again")),
        assistant(text(""), tool_use("c1", "f", {})),
        user(tool_result("c1", text(" \n"))),
    ]})  # fmt: skip
    for message in body["messages"]:
        content = message.get("content")
        assert (
            content is None
            or (isinstance(content, str) and content.strip())
            or (isinstance(content, list) and all(p.get("text", "x").strip() for p in content))
        ), message
    assert body["messages"][0] == {"role": "user", "content": "q"}
    assert body["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "(no output)"}


def test_pdf_by_url_and_by_file_id_use_the_file_part() -> None:
    doc = {"type": "document", "title": "spec.pdf",
           "source": {"type": "file", "file_id": "file-123"}}  # fmt: skip
    assert convert({"messages": [user(doc)]}, VISION)["messages"][0]["content"] == [
        {"type": "file", "file": {"file_id": "file-123", "filename": "spec.pdf"}}
    ]


def test_tokenizer_request_fits_the_documented_tokenizer() -> None:
    # model enum glm-4.6 / glm-4.6v / glm-4.5, roles user/system/assistant (OAS; zai-fidelity 1.5)
    from glmbridge.protocols.openai.tokenizer import TOKENIZER_MODELS, tokenizer_body, tokenizer_url

    history = [user(text("run it")), assistant(tool_use("c1", "Bash", {"command": "ls"})),
               user(tool_result("c1", text("a.py")))]  # fmt: skip
    chat = oa.encode_request(oa.request_from_ir(
        msgspec.json.decode(json.dumps({"model": "x", "messages": history}).encode(),
                            type=ir.Request), model="glm-5.3", spec=TEXT))  # fmt: skip
    body = json.loads(tokenizer_body(chat))
    assert body["model"] in TOKENIZER_MODELS and body["model"] == "glm-4.6"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert "Bash" in body["messages"][1]["content"] and body["messages"][2]["content"] == "a.py"
    seen = json.dumps({"model": "x", "messages": [user(image(), text("?"))]}).encode()
    vision = oa.encode_request(oa.request_from_ir(
        msgspec.json.decode(seen, type=ir.Request), model="glm-4.6v", spec=VISION))  # fmt: skip
    assert json.loads(tokenizer_body(vision))["model"] == "glm-4.6v"
    assert tokenizer_url("https://api.z.ai/api/coding/paas/v4") == (
        "https://api.z.ai/api/paas/v4/tokenizer")  # fmt: skip
    assert tokenizer_url("https://open.bigmodel.cn/api/paas/v4/") == (
        "https://open.bigmodel.cn/api/paas/v4/tokenizer")  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=ir_requests, model=st.sampled_from(sorted(DEFAULT_MODELS)))
def test_no_request_we_build_has_empty_content(req: ir.Request, model: str) -> None:
    # GLM rejects empty content (1213) and empty text parts (zai-fidelity 2.16); and the
    # request fits the model: no tool_stream, efforts or thinking-off it does not take.
    spec = DEFAULT_MODELS[model]
    try:
        body = json.loads(
            oa.encode_request(oa.request_from_ir(adapt_request(req, spec), model=model, spec=spec))
        )
    except ClientRequestError:
        return  # e.g. a PDF for a model without file input: a clear 400, nothing sent
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            assert content.strip(), message
        elif isinstance(content, list):
            assert content and all(p["text"].strip() for p in content if p["type"] == "text")
        else:
            assert content is None and message["role"] == "assistant" and message["tool_calls"]
    assert "tool_stream" not in body or spec.tool_stream
    assert "reasoning_effort" not in body or body["reasoning_effort"] in spec.efforts
    assert not (spec.thinking == "always" and body.get("thinking", {}).get("type") == "disabled")
    assert len(body.get("stop", [])) <= 4


def test_effort_is_rounded_for_every_upstream() -> None:
    # adapt_request runs for Z.ai's Anthropic endpoint too (output_config.effort there)
    req = ir.Request(model="m", messages=[], effort="medium")
    assert adapt_request(req, GLM53).effort == "high"
    assert adapt_request(req, GLM52).effort == "medium"
    assert adapt_request(req, TEXT).effort == "medium"  # no efforts listed: left as asked
