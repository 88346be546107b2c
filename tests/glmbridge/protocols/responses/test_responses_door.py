"""The OpenAI Responses front door (``POST /v1/responses``): requests -> IR, IR -> the
``response`` object, and the ``response.*`` stream encoder's endings.

Every request Codex CLI 0.171 was recorded sending (``tests/fixtures/codex``) must decode;
the SDK's ``Response`` model and :func:`validate_responses_stream` are the oracles for
what goes back.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openai.types.responses import Response

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ClientRequestError, ErrorKind, StreamStateError, UpstreamError
from glmbridge.protocols.openai.door_request import FREEFORM_SCHEMA
from glmbridge.protocols.responses import (
    RESPONSES_DOOR,
    StreamEncoder,
    response_from_ir,
    validate_responses_stream,
)
from glmbridge.protocols.responses.items import decode_reasoning, encode_reasoning
from glmbridge.sse import SSEDecoder
from glmbridge.upstream_errors import error_from_parts

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "codex"
CODEX_REQUESTS = sorted(
    p.name
    for p in FIXTURES.glob("*.json")
    if (doc := json.loads(p.read_text()))["method"] == "POST"
    and doc["path"].split("?")[0].endswith("/responses")
)
# Codex's try-again regex (codex-rs/codex-api/src/sse/responses.rs).
TRY_AGAIN = re.compile(r"(?i)try again in\s*(\d+(?:\.\d+)?)\s*(s|ms|seconds?)")


def fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


def decode(body: dict[str, Any]) -> ir.Request:
    return RESPONSES_DOOR.decode_request(json.dumps(body).encode())


def request(input_: Any = "hi", **fields: Any) -> ir.Request:
    return decode({"model": "glm-4.7", "input": input_, **fields})


def rejected(body: dict[str, Any]) -> ClientRequestError:
    with pytest.raises(ClientRequestError) as info:
        decode({"model": "glm-4.7", **body})
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    status, _ = RESPONSES_DOOR.encode_error(info.value)
    assert status == 400
    return info.value


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": list(parts)}


def blocks(req: ir.Request, role: str) -> list[ir.Block]:
    return [b for m in req.messages if m.role == role for b in m.content]


def schema_of(tool: ir.Tool) -> Any:
    schema = tool.input_schema
    return msgspec.json.decode(schema) if isinstance(schema, msgspec.Raw) else schema


# --- the recorded Codex requests -----------------------------------------------------------


def test_every_recorded_codex_post_is_covered() -> None:
    """The fixture scan found the recorded turns (a glob typo would make the suite vacuous)."""
    assert len(CODEX_REQUESTS) >= 15
    assert {"tool-3.json", "custom-3.json", "namespace-3.json", "reasoning-3.json"} <= set(
        CODEX_REQUESTS
    )


@pytest.mark.parametrize("name", CODEX_REQUESTS)
def test_codex_request_decodes(name: str) -> None:
    """Every recorded Codex turn decodes; developer messages are the system prompt."""
    body = fixture(name)
    req = decode(body)
    assert req.model == body["model"] and req.stream is True
    developer = [i for i in body["input"] if i.get("role") == "developer"]
    assert developer and body["input"][: len(developer)] == developer  # Codex puts them first
    # one system block per developer message, its parts separated by a blank line
    texts = ["\n\n".join(p["text"] for p in item["content"]) for item in developer]
    assert [b.text for b in req.system] == texts
    assert {m.role for m in req.messages} <= {"user", "assistant"}
    assert req.messages[0].role == "user"
    # the user prompt and environment context come through as text
    first_user = [p["text"] for p in body["input"][len(developer)]["content"]]
    assert [b.text for b in req.messages[0].content[: len(first_user)]] == first_user  # type: ignore[union-attr]
    # reasoning.effort medium / summary auto (or summary alone) turn thinking on
    assert req.thinking == ir.Thinking(type="enabled")
    assert req.effort == body["reasoning"].get("effort")
    assert req.echo["include"] == ["reasoning.encrypted_content"]
    assert req.echo["store"] is False


@pytest.mark.parametrize("name", [n for n in CODEX_REQUESTS if fixture(n)["tools"]])
def test_codex_tools(name: str) -> None:
    """apply_patch is a freeform one-string tool, namespaces are flattened, web_search is
    the gateway's server tool."""
    body = fixture(name)
    req = decode(body)
    by_name = {t.name: t for t in req.tools if t.server_type is None}
    sent = {t["type"]: t for t in body["tools"]}
    assert "web_search" in sent and not any("web_search" in n for n in by_name)
    assert [(t.name, t.server_type) for t in req.tools if t.server_type] == [
        ("web_search", "web_search")]  # fmt: skip
    functions = [t["name"] for t in body["tools"] if t["type"] == "function"]
    # every namespace (multi_agent_v1; image_gen with ChatGPT-mode auth) is flattened
    inner = [(ns["name"], t) for ns in body["tools"] if ns["type"] == "namespace"
             for t in ns["tools"]]  # fmt: skip
    flat = [f"{ns}__{t['name']}" for ns, t in inner]
    customs = [t["name"] for t in body["tools"] if t["type"] == "custom"]
    assert sorted(by_name) == sorted(functions + flat + customs)
    assert req.echo["namespaced"] == {f"{ns}__{t['name']}": [ns, t["name"]] for ns, t in inner}
    assert "multi_agent_v1__close_agent" in by_name and not by_name["get_goal"].freeform
    for name_, (_, raw) in zip(flat, inner, strict=True):
        assert schema_of(by_name[name_]) == raw["parameters"]
        assert by_name[name_].description == raw["description"]
    assert schema_of(by_name["exec_command"])["required"] == ["cmd"]
    if "custom" in sent:  # with the model catalog: the freeform apply_patch
        patch = by_name["apply_patch"]
        assert patch.freeform is True
        schema = schema_of(patch)
        assert schema == FREEFORM_SCHEMA
        assert list(schema["properties"]) == ["input"] and schema["required"] == ["input"]
        assert schema["properties"]["input"]["type"] == "string"
        assert sent["custom"]["format"]["definition"] in (patch.description or "")
        assert req.echo["freeform"] == ["apply_patch"]
    # the response object echoes the tools exactly as sent
    assert json.loads(bytes(req.echo["tools"])) == body["tools"]


@pytest.mark.parametrize(
    ("name", "item_type", "tool", "arguments"),
    [
        ("tool-3.json", "function_call", "exec_command", {"cmd": "echo hello"}),
        ("compact-3.json", "function_call", "exec_command", {"cmd": "echo hello"}),
        ("reasoning-3.json", "function_call", "exec_command", {"cmd": "echo hello"}),
        ("namespace-3.json", "function_call", "multi_agent_v1__close_agent",
         {"target": "nonexistent"}),
        ("custom-3.json", "custom_tool_call", "apply_patch",
         {"input": "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"}),
    ],
)  # fmt: skip
def test_codex_call_round_trip(
    name: str, item_type: str, tool: str, arguments: dict[str, Any]
) -> None:
    """A call and its output come back as tool_use and tool_result with the same id."""
    body = fixture(name)
    call = next(i for i in body["input"] if i.get("type") == item_type)
    output = next(i for i in body["input"] if i.get("type") == f"{item_type}_output")
    assert call["call_id"] == output["call_id"]
    req = decode(body)
    uses = [b for b in blocks(req, "assistant") if isinstance(b, ir.ToolUseBlock)]
    assert uses == [ir.ToolUseBlock(id=call["call_id"], name=tool, input=arguments)]
    turn = next(i for i, m in enumerate(req.messages) if uses[0] in m.content)
    results = req.messages[turn + 1].content
    assert req.messages[turn + 1].role == "user"
    assert results[0] == ir.ToolResultBlock(
        tool_use_id=call["call_id"], content=[ir.TextBlock(text=output["output"])]
    )


def test_codex_foreign_reasoning_falls_back_to_its_summary() -> None:
    """Reasoning whose encrypted_content is not ours becomes its summary text."""
    body = fixture("reasoning-3.json")
    item = next(i for i in body["input"] if i.get("type") == "reasoning")
    assert not item["encrypted_content"].startswith("gb1:")
    thinking = [b for b in blocks(decode(body), "assistant") if isinstance(b, ir.ThinkingBlock)]
    assert thinking == [ir.ThinkingBlock(thinking="Thinking about a greeting.")]
    # the thinking block comes before the call in the same assistant turn
    turn = next(m for m in decode(body).messages if m.role == "assistant")
    assert [type(b) for b in turn.content] == [ir.ThinkingBlock, ir.ToolUseBlock]


def test_codex_own_reasoning_returns_the_original_text() -> None:
    """Reasoning carrying our encrypted_content gives GLM's original text and signature back."""
    body = copy.deepcopy(fixture("reasoning-3.json"))
    item = next(i for i in body["input"] if i.get("type") == "reasoning")
    original = '用户想要问候。Let me run `echo hello` first — 😀 "quoted"\n'
    item["encrypted_content"] = encode_reasoning(original, "sig-1")
    item["summary"] = [{"type": "summary_text", "text": "a shorter summary"}]
    thinking = [b for b in blocks(decode(body), "assistant") if isinstance(b, ir.ThinkingBlock)]
    assert thinking == [ir.ThinkingBlock(thinking=original, signature="sig-1")]


def test_codex_raw_reasoning_content_is_kept() -> None:
    """Reasoning sent back as raw reasoning_text content (no summary, no blob) is kept."""
    body = fixture("reasoncontent-3.json")
    item = next(i for i in body["input"] if i.get("type") == "reasoning")
    assert item["summary"] == [] and item["encrypted_content"] is None
    thinking = [b for b in blocks(decode(body), "assistant") if isinstance(b, ir.ThinkingBlock)]
    assert thinking == [ir.ThinkingBlock(thinking=item["content"][0]["text"])]


@pytest.mark.parametrize(
    "blob", ["gb1:", "gb1:not base64!", "gb1:" + "eyJ4IjoxfQ==", "gAAAAABo-openai-blob", ""]
)
def test_unreadable_reasoning_blobs(blob: str) -> None:
    """A blob that is not ours (or is damaged) falls back to the summary; none: dropped."""
    assert decode_reasoning(blob) is None
    summary = [{"type": "summary_text", "text": "A"}, {"type": "summary_text", "text": "B"}]
    item = {"type": "reasoning", "id": "rs_1", "summary": summary, "encrypted_content": blob}
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    req = request([user({"type": "input_text", "text": "hi"}), item, call])
    assert req.messages[1].content[0] == ir.ThinkingBlock(thinking="AB")
    bare = {**item, "summary": []}
    req = request([user({"type": "input_text", "text": "hi"}), bare, call])
    assert [type(b) for b in req.messages[1].content] == [ir.ToolUseBlock]


def test_reasoning_blob_round_trip() -> None:
    """encode_reasoning and decode_reasoning are inverse (text and signature)."""
    for text, sig in [("", None), ("x", None), ("思考 \u2028 \x00", "s" * 300)]:
        assert decode_reasoning(encode_reasoning(text, sig)) == ir.ThinkingBlock(
            thinking=text, signature=sig
        )


# --- other input -------------------------------------------------------------------------------


def test_string_input_and_instructions() -> None:
    req = request("hello there", instructions="Be brief.")
    assert req.system == [ir.TextBlock(text="Be brief.")]
    assert req.messages == [ir.Message(role="user", content=[ir.TextBlock(text="hello there")])]
    assert req.echo["instructions"] == "Be brief."


def test_message_shapes_and_turns() -> None:
    """Items group into turns; a late developer message is an IR system message."""
    req = request(
        [
            {"role": "system", "content": "S1"},
            {"type": "message", "role": "developer", "content": [
                {"type": "input_text", "text": "S2"}]},
            {"role": "user", "content": "one"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "two"}, {"type": "refusal", "refusal": "!"}]},
            {"role": "developer", "content": "late"},
            {"role": "user", "content": [{"type": "input_text", "text": "three"}]},
            {"role": "user", "content": "four"},
        ],
        instructions="I",
    )  # fmt: skip
    assert [b.text for b in req.system] == ["I", "S1", "S2"]
    assert req.messages == [
        ir.Message(role="user", content=[ir.TextBlock(text="one")]),
        ir.Message(role="assistant", content=[ir.TextBlock(text="two!")]),
        ir.Message(role="system", content=[ir.TextBlock(text="late")]),
        ir.Message(role="user", content=[ir.TextBlock(text="three"), ir.TextBlock(text="four")]),
    ]


def test_input_images() -> None:
    req = request([user(
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
         "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
    )])  # fmt: skip
    assert req.messages[0].content[1:] == [
        ir.ImageBlock(source=ir.MediaSource(type="base64", media_type="image/png",
                                            data="iVBORw0KGgo=")),
        ir.ImageBlock(source=ir.MediaSource(type="url", url="https://example.com/cat.jpg")),
    ]  # fmt: skip


def test_input_files() -> None:
    req = request([user(
        {"type": "input_file", "filename": "a.pdf", "file_data": "JVBERi0xLjQ="},
        {"type": "input_file", "filename": "b.txt",
         "file_data": "data:text/plain;base64,aGVsbG8="},
        {"type": "input_file", "file_url": "https://example.com/c.pdf"},
    )])  # fmt: skip
    assert req.messages[0].content == [
        ir.DocumentBlock(source=ir.MediaSource(type="base64", media_type="application/pdf",
                                               data="JVBERi0xLjQ="), title="a.pdf"),
        ir.DocumentBlock(source=ir.MediaSource(type="base64", media_type="text/plain",
                                               data="aGVsbG8="), title="b.txt"),
        ir.DocumentBlock(source=ir.MediaSource(type="url", url="https://example.com/c.pdf")),
    ]  # fmt: skip


def test_tool_output_content_list() -> None:
    """A function_call_output may be a list of input_text and input_image parts."""
    call = {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": ""}
    output = {"type": "function_call_output", "call_id": "c1", "output": [
        {"type": "input_text", "text": "see"},
        {"type": "input_image", "image_url": "https://example.com/s.png"}]}  # fmt: skip
    req = request([user({"type": "input_text", "text": "hi"}), call, output])
    assert req.messages[1].content == [ir.ToolUseBlock(id="c1", name="shot", input={})]
    image = ir.ImageBlock(source=ir.MediaSource(type="url", url="https://example.com/s.png"))
    assert req.messages[2].content == [
        ir.ToolResultBlock(tool_use_id="c1", content=[ir.TextBlock(text="see"), image])
    ]


def test_namespaced_call_in_history_is_flattened() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "close_agent",
            "namespace": "multi_agent_v1", "arguments": {"target": "x"}}  # fmt: skip
    req = request([user({"type": "input_text", "text": "hi"}), call])
    assert req.messages[1].content == [
        ir.ToolUseBlock(id="c1", name="multi_agent_v1__close_agent", input={"target": "x"})
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"input": [user({"type": "input_image", "file_id": "file-1"})]}, "input.0.content.0"),
        ({"input": [{"role": "user", "content": "x"},
                    user({"type": "input_text", "text": "x"},
                         {"type": "input_file", "file_id": "file-1"})]}, "input.1.content.1"),
        ({"input": [user({"type": "input_image", "image_url": "ftp://x/y.png"})]},
         "input.0.content.0.image_url"),
        ({"input": [user({"type": "input_audio", "text": "x"})]}, "input.0.content.0.type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0"),
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input.0.role"),
        ({"input": [{"type": "message", "content": "x"}]}, "input.0.role"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input.0.call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
         "input.0.name"),
        ({}, "input"),
        ({"input": "hi", "reasoning": {"effort": "bogus"}}, "reasoning.effort"),
        ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "tool_choice": {"type": "function", "name": "missing"},
          "tools": [{"type": "function", "name": "f"}]}, "tool_choice"),
        ({"input": "hi", "tools": [{"type": "namespace", "name": "ns",
                                     "tools": [{"type": "custom", "name": "c"}]}]},
         "tools.0.tools.0.type"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools.0"),
    ],
)  # fmt: skip
def test_rejected_requests_name_the_field(body: dict[str, Any], path: str) -> None:
    """Invalid or stateful requests are 400s naming the offending field."""
    err = rejected(body)
    assert err.path == path or (err.path or "").startswith(path), err.message
    assert err.message.startswith(path)
    _, payload = RESPONSES_DOOR.encode_error(err)
    assert json.loads(payload)["error"]["param"] == path.split(".")[0]


def test_unknown_item_types_are_dropped() -> None:
    req = request([
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        user({"type": "input_text", "text": "hi"}),
        {"type": "image_generation_call", "id": "ig_1"},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "ok"}]},
    ])  # fmt: skip
    assert [m.role for m in req.messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("reasoning", "thinking", "effort"),
    [
        ({"effort": "none"}, ir.Thinking(type="disabled"), None),
        ({"effort": "minimal"}, ir.Thinking(type="enabled"), "low"),
        ({"effort": "low"}, ir.Thinking(type="enabled"), "low"),
        ({"effort": "medium", "summary": "auto"}, ir.Thinking(type="enabled"), "medium"),
        ({"effort": "high"}, ir.Thinking(type="enabled"), "high"),
        ({"effort": "xhigh"}, ir.Thinking(type="enabled"), "max"),
        ({"summary": "detailed"}, ir.Thinking(type="enabled"), None),
        ({"effort": "none", "summary": "auto"}, ir.Thinking(type="disabled"), None),
        ({}, None, None),
        (None, None, None),
    ],
)
def test_reasoning_effort(
    reasoning: dict[str, Any] | None, thinking: ir.Thinking | None, effort: str | None
) -> None:
    req = request(reasoning=reasoning)
    assert (req.thinking, req.effort) == (thinking, effort)
    echoed = reasoning or {}
    assert req.echo["reasoning"] == {"effort": echoed.get("effort"),
                                     "summary": echoed.get("summary")}  # fmt: skip


def test_text_format() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    req = request(text={"format": fmt})
    assert req.response_format == ir.ResponseFormat(type="json_schema", schema=schema, name="out")
    assert req.echo["text"] == {"format": fmt}
    assert request(text={"format": {"type": "json_object"}}).response_format == (
        ir.ResponseFormat(type="json_object")
    )
    assert request(text={"format": {"type": "text"}}).response_format is None
    assert request(text={"verbosity": "low"}).response_format is None


TOOLS = [
    {"type": "function", "name": "f", "parameters": {"type": "object"}},
    {"type": "function", "name": "g", "parameters": {"type": "object"}},
    {"type": "custom", "name": "patch"},
]


@pytest.mark.parametrize(
    ("choice", "parallel", "names", "expected"),
    [
        (None, None, ["f", "g", "patch"], None),
        ("auto", False, ["f", "g", "patch"], ir.ToolChoice(disable_parallel_tool_use=True)),
        ("none", None, ["f", "g", "patch"], ir.ToolChoice(type="none")),
        ("required", None, ["f", "g", "patch"], ir.ToolChoice(type="any")),
        ({"type": "function", "name": "g"}, None, ["f", "g", "patch"],
         ir.ToolChoice(type="tool", name="g")),
        ({"type": "custom", "name": "patch"}, False, ["f", "g", "patch"],
         ir.ToolChoice(type="tool", name="patch", disable_parallel_tool_use=True)),
        ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "g"}]},
         None, ["g"], ir.ToolChoice(type="auto")),
        ({"type": "allowed_tools", "mode": "required",
          "tools": [{"type": "function", "name": "f"}, {"type": "custom", "name": "patch"}]},
         None, ["f", "patch"], ir.ToolChoice(type="any")),
        ({"type": "web_search_preview"}, None, ["f", "g", "patch"], None),
    ],
)  # fmt: skip
def test_tool_choice(
    choice: Any, parallel: bool | None, names: list[str], expected: ir.ToolChoice | None
) -> None:
    fields: dict[str, Any] = {"tools": TOOLS}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    req = request(**fields)
    assert [t.name for t in req.tools] == names
    assert req.tool_choice == expected
    assert req.echo["tool_choice"] == (choice if choice is not None else "auto")
    assert req.echo["parallel_tool_calls"] is (parallel is not False)


def test_hosted_and_unknown_tools_are_dropped_but_web_search_is_run() -> None:
    tools = [{"type": t} for t in ("web_search", "web_search_preview", "file_search",
                                   "code_interpreter", "image_generation", "mcp",
                                   "local_shell", "brand_new_tool")]  # fmt: skip
    req = request(tools=[*tools, TOOLS[0]])
    assert [t.name for t in req.tools if t.server_type is None] == ["f"]
    # web search is the gateway's server tool (glmbridge.server_tools), its filters mapped
    assert [t.server_type for t in req.tools if t.server_type] == [
        "web_search", "web_search_preview"]  # fmt: skip
    filtered = request(
        tools=[
            {
                "type": "web_search",
                "filters": {"allowed_domains": ["a.com"]},
                "user_location": {"type": "approximate", "country": "DE"},
            }
        ]
    )
    assert filtered.tools[0].config == {
        "allowed_domains": ["a.com"],
        "user_location": {"type": "approximate", "country": "DE"},
    }


def test_settings_are_read_and_echoed() -> None:
    req = request(max_output_tokens=77, temperature=0.25, top_p=0.5, store=False,
                  metadata={"k": "v"}, prompt_cache_key="thread-1", stream=True)  # fmt: skip
    assert (req.max_tokens, req.temperature, req.top_p, req.stream) == (77, 0.25, 0.5, True)
    assert req.user_id == "thread-1"
    assert request(prompt_cache_key="t", safety_identifier="s").user_id == "s"
    assert req.echo["max_output_tokens"] == 77 and req.echo["metadata"] == {"k": "v"}
    assert req.echo["store"] is False and request().echo["store"] is True


# --- the response object ----------------------------------------------------------------------

RESPONSE_REQUEST: dict[str, Any] = {
    "model": "gpt-5-codex",
    "input": "hi",
    "instructions": "Be brief.",
    "tools": [
        {"type": "function", "name": "exec_command", "description": "run",
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
        {"type": "custom", "name": "apply_patch", "description": "patch"},
        {"type": "namespace", "name": "multi_agent_v1", "description": "agents",
         "tools": [{"type": "function", "name": "close_agent", "description": "close",
                    "parameters": {"type": "object"}}]},
        {"type": "web_search"},
    ],
    "reasoning": {"effort": "high", "summary": "auto"},
    "store": False,
    "max_output_tokens": 1000,
}  # fmt: skip
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+hé "x"\n*** End Patch\n'
ANSWER = ir.Response(
    id="msg_0123abc",
    model="gpt-5-codex",
    content=[
        ir.ThinkingBlock(thinking="Let me think. 想一想", signature="sig9"),
        ir.TextBlock(text="Running it."),
        ir.ToolUseBlock(id="call_1", name="exec_command", input={"cmd": "ls -la", "n": 1.5}),
        ir.ToolUseBlock(id="call_2", name="apply_patch", input={"input": PATCH}),
        ir.ToolUseBlock(id="call_3", name="multi_agent_v1__close_agent", input={"target": "a"}),
    ],
    stop_reason=ir.StopReason.TOOL_USE,
    usage=ir.Usage(
        input_tokens=100,
        output_tokens=40,
        cache_read_input_tokens=60,
        cache_creation_input_tokens=5,
        reasoning_tokens=12,
    ),  # fmt: skip
)


def response_json(resp: ir.Response = ANSWER, body: dict[str, Any] = RESPONSE_REQUEST) -> Any:
    req = decode(body)
    return json.loads(response_from_ir(resp, echo=req.echo, created_at=1_700_000_000))


def test_response_object_exact() -> None:
    """The whole non-streamed body, field by field."""
    doc = response_json()
    encrypted = doc["output"][0]["encrypted_content"]
    assert doc == {
        "id": "resp_0123abc",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": "Be brief.",
        "max_output_tokens": 1000,
        "model": "gpt-5-codex",
        "output": [
            {"id": "rs_0123abc0", "type": "reasoning", "status": "completed",
             "summary": [{"type": "summary_text", "text": "Let me think. 想一想"}],
             "encrypted_content": encrypted},
            {"id": "msg_0123abc1", "type": "message", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Running it.", "annotations": [],
                          "logprobs": []}]},
            {"id": "fc_0123abc2", "type": "function_call", "call_id": "call_1",
             "name": "exec_command", "arguments": '{"cmd":"ls -la","n":1.5}',
             "status": "completed"},
            {"id": "ctc_0123abc3", "type": "custom_tool_call", "call_id": "call_2",
             "name": "apply_patch", "input": PATCH, "status": "completed"},
            {"id": "fc_0123abc4", "type": "function_call", "call_id": "call_3",
             "namespace": "multi_agent_v1", "name": "close_agent",
             "arguments": '{"target":"a"}', "status": "completed"},
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": RESPONSE_REQUEST["tools"],
        "top_p": None,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 165,
            "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 5},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 12},
            "total_tokens": 205,
        },
        "metadata": {},
    }  # fmt: skip
    # the reasoning blob carries GLM's text and signature back
    assert decode_reasoning(encrypted) == ir.ThinkingBlock(
        thinking="Let me think. 想一想", signature="sig9"
    )


def test_response_object_validates_with_the_sdk() -> None:
    """The openai SDK's Response model accepts the body and reads it back."""
    sdk = Response.model_validate(response_json())
    assert sdk.id == "resp_0123abc" and sdk.status == "completed"
    assert sdk.output_text == "Running it."
    reasoning, _, call, custom, namespaced = sdk.output
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert call.type == "function_call" and json.loads(call.arguments)["cmd"] == "ls -la"
    assert custom.type == "custom_tool_call" and custom.input == PATCH
    assert namespaced.type == "function_call"
    assert (namespaced.namespace, namespaced.name) == ("multi_agent_v1", "close_agent")
    assert sdk.usage is not None and sdk.usage.input_tokens_details.cached_tokens == 60
    # and every recorded Codex request's echo is accepted too
    for name in ("models-2.json", "output_schema-2.json", "compact-3.json"):
        Response.model_validate(response_json(body=fixture(name)))


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        (ir.StopReason.END_TURN, "completed", None),
        (None, "completed", None),
        (ir.StopReason.STOP_SEQUENCE, "completed", None),
        (ir.StopReason.MAX_TOKENS, "incomplete", "max_output_tokens"),
        (ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED, "incomplete", "max_output_tokens"),
        (ir.StopReason.REFUSAL, "incomplete", "content_filter"),
    ],
)
def test_response_status(stop: ir.StopReason | None, status: str, reason: str | None) -> None:
    resp = ir.Response(id="msg_x", model="m", content=[ir.TextBlock(text="cut")], stop_reason=stop)
    doc = response_json(resp)
    assert doc["status"] == status
    assert doc["incomplete_details"] == ({"reason": reason} if reason else None)
    # the item ended (its block closed): the response's status says why the answer stopped
    assert [i["status"] for i in doc["output"]] == ["completed"]
    Response.model_validate(doc)


def test_json_mode_unwraps_fenced_json() -> None:
    body = {**RESPONSE_REQUEST, "text": {"format": {"type": "json_object"}}}
    req = decode(body)
    resp = ir.Response(id="msg_j", model="m", content=[ir.TextBlock(text='```json\n{"a": 1}\n```')])
    doc = json.loads(RESPONSES_DOOR.for_request(req).encode_response(resp))
    assert doc["output"][0]["content"][0]["text"] == '{"a": 1}'
    assert doc["text"] == {"format": {"type": "json_object"}}


def test_empty_answer_has_no_items() -> None:
    doc = response_json(ir.Response(id="msg_e", model="m", content=[]))
    assert doc["output"] == [] and doc["status"] == "completed"
    assert doc["usage"]["total_tokens"] == 0


# --- the stream encoder ---------------------------------------------------------------------


def encoder(body: dict[str, Any] = RESPONSE_REQUEST) -> StreamEncoder:
    req = decode(body)
    return StreamEncoder(model=req.model, echo=req.echo, created_at=1_700_000_000)


def frames(raw: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [json.loads(f.data) for f in decoder.feed(raw) + decoder.flush()]


START = ev.MessageStart(id="msg_0123abc", model="gpt-5-codex", usage=ir.Usage())


def answer_events(resp: ir.Response = ANSWER) -> list[ev.Event]:
    """The IR events of ``resp``, streamed in small deltas."""
    out: list[ev.Event] = [START]
    for i, block in enumerate(resp.content):
        if isinstance(block, ir.TextBlock):
            out += [ev.BlockStart(index=i, block=ir.TextBlock(text=""))]
            out += [ev.TextDelta(index=i, text=block.text[k : k + 3])
                    for k in range(0, len(block.text), 3)]  # fmt: skip
        elif isinstance(block, ir.ThinkingBlock):
            out += [ev.BlockStart(index=i, block=ir.ThinkingBlock(thinking=""))]
            out += [ev.ThinkingDelta(index=i, thinking=block.thinking[k : k + 3])
                    for k in range(0, len(block.thinking), 3)]  # fmt: skip
            out += [ev.SignatureDelta(index=i, signature=block.signature or "")]
        elif isinstance(block, ir.ToolUseBlock):
            args = json.dumps(block.input, ensure_ascii=False, separators=(",", ":"))
            out += [ev.BlockStart(index=i, block=ir.ToolUseBlock(id=block.id, name=block.name,
                                                                 input={}))]  # fmt: skip
            out += [ev.InputJsonDelta(index=i, partial_json=args[k : k + 5])
                    for k in range(0, len(args), 5)]  # fmt: skip
        out.append(ev.BlockStop(index=i))
    out += [ev.MessageDelta(stop_reason=resp.stop_reason, usage=resp.usage), ev.MessageStop()]
    return out


def run(enc: StreamEncoder, events: list[ev.Event]) -> bytes:
    return b"".join(enc.feed(e) for e in events) + enc.flush()


def test_stream_matches_the_response_object() -> None:
    """A streamed answer validates and ends with the non-streamed body's output and usage."""
    raw = run(encoder(), answer_events())
    final = validate_responses_stream(raw)
    body = response_json()
    assert {k: v for k, v in final.items()} == body
    kinds = [f["type"] for f in frames(raw)]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.custom_tool_call_input.delta" in kinds
    # the freeform input is sent raw, once, not as JSON arguments
    patch = [f for f in frames(raw) if f["type"] == "response.custom_tool_call_input.done"]
    assert [f["input"] for f in patch] == [PATCH]
    args_done = [f for f in frames(raw) if f["type"] == "response.function_call_arguments.done"]
    assert [f["name"] for f in args_done] == ["exec_command", "close_agent"]


def test_stream_incomplete() -> None:
    resp = ir.Response(id="msg_0123abc", model="gpt-5-codex", content=[ir.TextBlock(text="abc")],
                       stop_reason=ir.StopReason.MAX_TOKENS)  # fmt: skip
    raw = run(encoder(), answer_events(resp))
    final = validate_responses_stream(raw)
    assert frames(raw)[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"] == response_json(resp)["output"]
    assert [i["status"] for i in final["output"]] == ["completed"]


def failed(raw: bytes) -> dict[str, Any]:
    final = validate_responses_stream(raw)
    assert frames(raw)[-1]["type"] == "response.failed"
    assert final["status"] == "failed"
    error: dict[str, Any] = final["error"]
    return error


def test_fail_before_message_start_still_creates_the_response() -> None:
    """A failure before anything was sent: response.created comes first (Codex needs it)."""
    enc = encoder()
    raw = enc.fail(UpstreamError("boom", kind=ErrorKind.API_ERROR))
    assert [f["type"] for f in frames(raw)] == [
        "response.created", "response.in_progress", "response.failed"
    ]  # fmt: skip
    assert failed(raw) == {"code": "server_error", "message": "boom"}
    assert [f["sequence_number"] for f in frames(raw)] == [0, 1, 2]
    assert frames(raw)[0]["response"]["id"].startswith("resp_")
    assert enc.keepalive() == b"" and enc.flush() == b""


def test_stream_error_mid_item_fails_with_finished_items_only() -> None:
    events = answer_events()
    first_text = next(i for i, e in enumerate(events) if isinstance(e, ev.TextDelta))
    events = events[: first_text + 1]  # reasoning done, the text item open
    enc = encoder()
    raw = b"".join(enc.feed(e) for e in events)
    raw += enc.feed(ev.StreamError(kind=ErrorKind.OVERLOADED, message="busy"))
    assert failed(raw) == {"code": "server_is_overloaded", "message": "busy"}
    final = validate_responses_stream(raw)
    assert [i["type"] for i in final["output"]] == ["reasoning"]
    with pytest.raises(StreamStateError):
        enc.feed(ev.MessageStop())


def test_flush_without_an_end_fails() -> None:
    enc = encoder()
    raw = b"".join(enc.feed(e) for e in answer_events()[:4]) + enc.flush()
    assert failed(raw)["code"] == "server_error"


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (error_from_parts(400, "1261", "Prompt exceeds max length."), "context_length_exceeded"),
        (error_from_parts(429, "1308", "Usage limit reached for 5 hour."), "insufficient_quota"),
        (error_from_parts(429, "1113", "Insufficient balance."), "insufficient_quota"),
        (error_from_parts(401, "1002", "Token invalid."), "invalid_api_key"),
        (error_from_parts(500, "1234", "Network error."), "server_error"),
        (UpstreamError("timed out", kind=ErrorKind.TIMEOUT), "timeout"),
    ],
)
def test_failure_codes(err: UpstreamError, code: str) -> None:
    """response.failed carries the OpenAI code Codex classifies errors by."""
    enc = encoder()
    raw = enc.feed(START) + enc.fail(err)
    error = failed(raw)
    assert error["code"] == code
    assert err.message in error["message"]
    assert not TRY_AGAIN.search(error["message"])


@pytest.mark.parametrize(("retry_after", "seconds"), [(None, 1), (0.2, 1), (2.0, 2), (2.3, 3)])
def test_rate_limit_failure_says_when_to_try_again(retry_after: float | None, seconds: int) -> None:
    err = error_from_parts(429, "1302", "High concurrency.", retry_after=retry_after)
    assert err.kind is ErrorKind.RATE_LIMIT
    enc = encoder()
    raw = enc.feed(START) + enc.feed(ev.BlockStart(index=0, block=ir.TextBlock(text="")))
    raw += enc.feed(ev.TextDelta(index=0, text="partial")) + enc.fail(err)
    error = failed(raw)
    assert error["code"] == "rate_limit_exceeded"
    match = TRY_AGAIN.search(error["message"])
    assert match is not None and (match[1], match[2]) == (str(seconds), "s")


def test_keepalive_is_a_numbered_in_progress_event() -> None:
    """keepalive() is response.in_progress with the next sequence number, anywhere."""
    enc = encoder()
    assert enc.keepalive() == b""  # nothing started: nothing to keep alive
    events = answer_events()
    raw = b""
    for event in events:
        raw += enc.feed(event)
        if not isinstance(event, ev.MessageStop):
            ping = enc.keepalive()
            (body,) = frames(ping)
            assert body["type"] == "response.in_progress"
            assert body["sequence_number"] == len(frames(raw))
            assert body["response"]["status"] == "in_progress" and body["response"]["output"] == []
            raw += ping
    assert enc.keepalive() == b""  # finished
    final = validate_responses_stream(raw)
    assert final["output"] == response_json()["output"]
    pings = [f for f in frames(raw) if f["type"] == "response.in_progress"]
    assert len(pings) == len(events)  # the first one, then one after each event but the last


def test_door_errors() -> None:
    """Errors before the stream: OpenAI's body, retry headers, and an error event."""
    quota = error_from_parts(429, "1308", "Usage limit reached.")
    status, body = RESPONSES_DOOR.encode_error(quota)
    assert status == 429
    assert json.loads(body)["error"]["code"] == "insufficient_quota"
    assert RESPONSES_DOOR.error_headers(quota) == {"x-should-retry": "false"}
    limited = error_from_parts(429, "1302", "Busy.", retry_after=2.5)
    assert RESPONSES_DOOR.error_headers(limited)["retry-after"] == "3"
    context = error_from_parts(400, "1261", "Prompt exceeds max length.")
    status, body = RESPONSES_DOOR.encode_error(context)
    assert (status, json.loads(body)["error"]["code"]) == (400, "context_length_exceeded")
    event = frames(RESPONSES_DOOR.error_event(context))
    assert event == [{"type": "error", "sequence_number": 0, "code": "context_length_exceeded",
                      "message": context.message, "param": None}]  # fmt: skip
    validate_responses_stream(RESPONSES_DOOR.error_event(context))


def test_stream_item_ids_with_percent_signs_stay_literal() -> None:
    """The delta frame is a %-template: a "%" in the message id (hence in the item ids)
    must come out as itself, and every delta names the item it belongs to."""
    start = ev.MessageStart(id="msg_50%d%b%%s", model="gpt-5-codex", usage=ir.Usage())
    raw = run(encoder(), [start, *answer_events()[1:]])
    validate_responses_stream(raw)
    added = {}
    for frame in frames(raw):
        if frame["type"] == "response.output_item.added":
            added[frame["output_index"]] = frame["item"]["id"]
            assert "50%d%b%%s" in frame["item"]["id"]
        elif frame["type"].endswith(".delta") and "item_id" in frame:
            assert frame["item_id"] == added[frame["output_index"]]
    assert added
