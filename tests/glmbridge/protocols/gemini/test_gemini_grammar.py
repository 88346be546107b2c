"""The Gemini stream grammar validator: accepts our shapes in both framings, rejects each
violation with the rule it breaks."""
# The case tables keep one case per line, so long lines are expected here.
# ruff: noqa: E501

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal

import pytest
from google.genai import types

from glmbridge import events as ev
from glmbridge import ir
from glmbridge.errors import ErrorKind, GlmbridgeError
from glmbridge.protocols.anthropic.grammar import StreamGrammarError
from glmbridge.protocols.gemini import StreamEncoder, response_from_ir, validate_gemini_stream
from glmbridge.protocols.gemini.grammar import FINISH_REASONS, RPC_STATUSES
from tests.json_edits import DROP, json_paths, with_value

Frame = dict[str, Any]
Item = Frame | bytes  # a JSON object, or raw bytes written verbatim
Framing = Literal["sse", "array"]

MODEL = "gemini-2.5-pro"
RID = "r1"
USAGE: Frame = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
ERROR: Frame = {
    "error": {
        "code": 500,
        "message": "boom",
        "status": "INTERNAL",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INTERNAL"}],
    }
}


def chunk(*parts: Any, finish: str | None = None, usage: Any = None, **extra: Any) -> Frame:
    candidate: Frame = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    body: Frame = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage
    return {**body, "modelVersion": MODEL, "responseId": RID, **extra}


def text(value: str) -> Frame:
    return {"text": value}


def thought(value: str) -> Frame:
    return {"text": value, "thought": True}


def call(name: str, args: Any, call_id: str) -> Frame:
    return {"functionCall": {"name": name, "args": args, "id": call_id}}


def end(reason: str = "STOP", usage: Any = USAGE, *parts: Frame) -> Frame:
    """The finish chunk (one empty text part, as the encoder sends it, unless ``parts``)."""
    return chunk(*(parts or (text(""),)), finish=reason, usage=usage)


def _json(frame: Frame) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def sse(items: list[Item]) -> bytes:
    """``data: <json>\\n\\n`` per chunk; an ``{"error"}`` object as a bare line."""
    out = []
    for item in items:
        if isinstance(item, bytes):
            out.append(item)
        elif list(item) == ["error"]:
            out.append(_json(item) + b"\n")
        else:
            out.append(b"data: " + _json(item) + b"\n\n")
    return b"".join(out)


def array(items: list[Item]) -> bytes:
    """``[chunk,\\r\\nchunk]``."""
    return b"[" + b",\r\n".join(i if isinstance(i, bytes) else _json(i) for i in items) + b"]"


def frame(items: list[Item], framing: Framing) -> bytes:
    return sse(items) if framing == "sse" else array(items)


def folded(*parts: Frame, reason: str | None = "STOP", usage: Frame | None = USAGE,
           error: Frame | None = None) -> Frame:  # fmt: skip
    """The result ``validate_gemini_stream`` returns."""
    candidate: Frame = {"content": {"role": "model", "parts": list(parts)}}
    if reason is not None:
        candidate["finishReason"] = reason
    candidate["index"] = 0
    out: Frame = {"candidates": [candidate]}
    if usage is not None:
        out["usageMetadata"] = usage
    out.update(modelVersion=MODEL, responseId=RID)
    if error is not None:
        out["error"] = error["error"]
    return out


FULL_USAGE: Frame = {"promptTokenCount": 100, "candidatesTokenCount": 7, "totalTokenCount": 110,
                     "thoughtsTokenCount": 3, "cachedContentTokenCount": 40}  # fmt: skip
FULL: list[Item] = [
    chunk(thought("Let me ")), chunk(thought("think.")),
    chunk(text("Calling ")), chunk(text("tools.")),
    chunk(call("get_weather", {"city": "Paris"}, "call_1")),
    chunk(call("ls", {}, "call_2")),
    end("STOP", FULL_USAGE),
]  # fmt: skip

# name -> (items, include_thoughts values it is valid for, expected result)
VALID: dict[str, tuple[list[Item], tuple[bool, ...], Frame]] = {
    "text only": ([chunk(text("Hel")), chunk(text("lo")), end()], (True, False), folded(text("Hello"))),
    "thoughts, text, two calls": (
        FULL, (True,),
        folded(thought("Let me think."), text("Calling tools."), call("get_weather", {"city": "Paris"}, "call_1"),
               call("ls", {}, "call_2"), usage=FULL_USAGE),
    ),
    "finish chunk only": ([end("SAFETY")], (True, False), folded(reason="SAFETY")),
    "text on the finish chunk": ([chunk(text("a")), end("MAX_TOKENS", USAGE, text("b"))], (False,), folded(text("ab"), reason="MAX_TOKENS")),
    "text between calls stays in order": (
        [chunk(call("f", {"a": [1, None]}, "c1")), chunk(text("and")), chunk(call("f", {}, "c2")), end()], (False,),
        folded(call("f", {"a": [1, None]}, "c1"), text("and"), call("f", {}, "c2")),
    ),
    "several parts in one chunk": ([chunk(thought("t"), text("x"), call("g", {}, "c")), end()], (True,), folded(thought("t"), text("x"), call("g", {}, "c"))),
    "error first": ([ERROR], (True, False), {"error": ERROR["error"]}),
    "error mid-stream": ([chunk(text("par")), chunk(call("f", {}, "c")), ERROR], (True, False),
                         folded(text("par"), call("f", {}, "c"), reason=None, usage=None, error=ERROR)),
    "error without details": ([chunk(text("x")), {"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}}], (False,),
                              folded(text("x"), reason=None, usage=None, error={"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}})),
    "unknown chunk keys ignored": ([chunk(text("x"), promptFeedback={}), end()], (False,), folded(text("x"))),
}  # fmt: skip


@pytest.mark.parametrize("framing", ["sse", "array"])
@pytest.mark.parametrize(("items", "modes", "expected"), VALID.values(), ids=VALID.keys())
def test_accepts_valid_streams(
    items: list[Item], modes: tuple[bool, ...], expected: Frame, framing: Framing
) -> None:
    raw = frame(items, framing)
    for mode in modes:
        assert validate_gemini_stream(raw, framing=framing, include_thoughts=mode) == expected


@pytest.mark.parametrize("items", [v[0] for v in VALID.values()], ids=VALID.keys())
def test_valid_chunks_and_results_parse_with_the_sdk(items: list[Item]) -> None:
    # google-genai's own model (extra keys forbidden) accepts every chunk we call valid
    # and every folded result.
    for item in items:
        if isinstance(item, dict) and "error" not in item:
            types.GenerateContentResponse.model_validate(item)
    result = validate_gemini_stream(sse(items))
    if "error" not in result:
        types.GenerateContentResponse.model_validate(result)


def test_vocabularies_are_the_sdks() -> None:
    assert {r.value for r in types.FinishReason} >= FINISH_REASONS
    assert "FINISH_REASON_UNSPECIFIED" not in FINISH_REASONS
    assert {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "INTERNAL", "UNAVAILABLE"} <= RPC_STATUSES


def test_result_matches_the_non_streamed_body() -> None:
    """The encoder's stream folds to what ``response_from_ir`` writes for the same answer."""
    usage = ir.Usage(
        input_tokens=50, output_tokens=9, cache_read_input_tokens=20, reasoning_tokens=4
    )
    tool = ir.ToolUseBlock(id="call_9", name="Bash", input={"command": "ls"})
    resp = ir.Response(id="msg_abc", model=MODEL, stop_reason=ir.StopReason.TOOL_USE, usage=usage,
                       content=[ir.ThinkingBlock(thinking="hmm"), ir.TextBlock(text="Running."), tool])  # fmt: skip
    events: list[ev.Event] = [
        ev.MessageStart(id="msg_abc", model=MODEL, usage=ir.Usage()),
        ev.BlockStart(index=0, block=ir.ThinkingBlock(thinking="")),
        ev.ThinkingDelta(index=0, thinking="hm"), ev.ThinkingDelta(index=0, thinking="m"),
        ev.BlockStop(index=0),
        ev.BlockStart(index=1, block=ir.TextBlock(text="")),
        ev.TextDelta(index=1, text="Run"), ev.TextDelta(index=1, text="ning."),
        ev.BlockStop(index=1),
        ev.BlockStart(index=2, block=ir.ToolUseBlock(id="call_9", name="Bash", input={})),
        ev.InputJsonDelta(index=2, partial_json='{"comm'), ev.InputJsonDelta(index=2, partial_json='and":"ls"}'),
        ev.BlockStop(index=2),
        ev.MessageDelta(stop_reason=ir.StopReason.TOOL_USE, usage=usage),
        ev.MessageStop(),
    ]  # fmt: skip
    for framing in ("sse", "array"):
        for include in (True, False):
            enc = StreamEncoder(model=MODEL, include_thoughts=include, framing=framing)
            raw = b"".join(enc.feed(e) for e in events) + enc.flush()
            got = validate_gemini_stream(raw, framing=framing, include_thoughts=include)
            assert got == json.loads(response_from_ir(resp, include_thoughts=include))


# --- violations ------------------------------------------------------------------------------


C = chunk(text("x"))
STOP = end()

# (name, items, include_thoughts, rule, message fragment): the same in both framings.
INVALID: list[tuple[str, list[Item], bool, str, str]] = [
    ("no finish reason", [C, C], True, "truncated stream", "end of stream: truncated stream: ended while streaming"),
    ("empty stream", [], True, "truncated stream", "ended before the first chunk"),
    ("chunk after the finish chunk", [C, STOP, C], True, "event order", "event 2 (chunk): event order: a chunk after the finish chunk"),
    ("two finish chunks", [STOP, STOP], True, "event order", "event 1 (finish chunk): event order"),
    ("error after the finish chunk", [STOP, ERROR], True, "event order", "an error after the finish chunk"),
    ("chunk after the error", [C, ERROR, C], True, "event order", "event 2 (frame): event order: nothing may follow the error"),
    ("no candidates", [{"modelVersion": MODEL, "responseId": RID}, STOP], True, "candidates", "event 0 (chunk): candidates: candidates must be a list of exactly one"),
    ("two candidates", [{**C, "candidates": C["candidates"] * 2}, STOP], True, "candidates", "exactly one candidate"),
    ("candidate not an object", [with_value(C, "candidates.0", "x"), STOP], True, "candidates", "candidates[0] must be an object"),
    ("candidate index 1", [with_value(C, "candidates.0.index", 1), STOP], True, "candidates", "index must be 0, got 1"),
    ("candidate index missing", [with_value(C, "candidates.0.index", DROP), STOP], True, "candidates", "got None"),
    ("content missing", [with_value(C, "candidates.0.content", DROP), STOP], True, "content", "content must be an object"),
    ("role user", [with_value(C, "candidates.0.content.role", "user"), STOP], True, "content", "content.role must be 'model', got 'user'"),
    ("parts empty", [with_value(C, "candidates.0.content.parts", []), STOP], True, "content", "content.parts must be a non-empty list"),
    ("finish chunk without parts", [with_value(STOP, "candidates.0.content.parts", []), ], True, "content", "non-empty list"),
    ("part not an object", [chunk("x"), STOP], True, "part", "a part must be an object"),
    ("text and functionCall", [chunk({**text("x"), **call("f", {}, "c")}), STOP], True, "part", "exactly one of text or functionCall"),
    ("empty part", [chunk({}), STOP], True, "part", "exactly one of text or functionCall"),
    ("thoughtSignature", [chunk({**call("f", {}, "c"), "thoughtSignature": "sig"}), STOP], True, "part", "unexpected part keys ['thoughtSignature']"),
    ("inlineData", [chunk({"inlineData": {"mimeType": "image/png", "data": ""}}), STOP], True, "part", "unexpected part keys"),
    ("thought false", [chunk({"text": "x", "thought": False}), STOP], True, "part", "thought must be true when present, got False"),
    ("thought on a call", [chunk({**call("f", {}, "c"), "thought": True}), STOP], True, "part", "thought belongs to text parts only"),
    ("text not a string", [chunk({"text": 5}), STOP], True, "part", "text must be a string"),
    ("empty text mid-stream", [chunk(text("")), STOP], True, "empty text", "event 0 (chunk): empty text"),
    ("empty text beside another part", [end("STOP", USAGE, text(""), text("x"))], True, "empty text", "empty text"),
    ("empty thought on the finish chunk", [end("STOP", USAGE, thought(""))], True, "empty text", "empty text"),
    ("thought not asked for", [C, chunk(thought("t")), STOP], False, "thoughts", "event 1 (chunk): thoughts: a thought part, but the request did not set includeThoughts"),
    ("args a string", [chunk(call("f", '{"a":1}', "c")), STOP], True, "function call", "functionCall.args must be an object (never a string)"),
    ("call without id", [chunk({"functionCall": {"name": "f", "args": {}}}), STOP], True, "function call", "functionCall must be an object {name, args, id}"),
    ("call with an extra key", [chunk({"functionCall": {"name": "f", "args": {}, "id": "c", "x": 1}}), STOP], True, "function call", "{name, args, id}"),
    ("call empty name", [chunk(call("", {}, "c")), STOP], True, "function call", "name must be a non-empty string"),
    ("call empty id", [chunk(call("f", {}, "")), STOP], True, "function call", "id must be a non-empty string"),
    ("call id used twice", [chunk(call("f", {}, "c")), chunk(call("g", {}, "c")), STOP], True, "function call", "functionCall.id 'c' used twice"),
    ("responseId changes", [C, with_value(STOP, "responseId", "r2")], True, "chunk identity", "event 1 (finish chunk): chunk identity: responseId changed from 'r1' to 'r2'"),
    ("modelVersion changes", [C, with_value(STOP, "modelVersion", "m")], True, "chunk identity", "modelVersion changed"),
    ("modelVersion missing", [with_value(C, "modelVersion", DROP), STOP], True, "chunk identity", "modelVersion and a non-empty responseId are required"),
    ("responseId empty", [with_value(STOP, "responseId", "")], True, "chunk identity", "required"),
    ("unknown finishReason", [end("END_TURN")], True, "finish reason", "'END_TURN' is not a Gemini finishReason"),
    ("unspecified finishReason", [end("FINISH_REASON_UNSPECIFIED")], True, "finish reason", "is not a Gemini finishReason"),
    ("unhashable finishReason", [with_value(STOP, "candidates.0.finishReason", ["STOP"])], True, "finish reason", "['STOP'] is not"),
    ("finish without usage", [end("STOP", None)], True, "usage", "the finish chunk must carry a usageMetadata object"),
    ("usage on a content chunk", [chunk(text("x"), usage=USAGE), STOP], True, "usage", "event 0 (chunk): usage: usageMetadata belongs on the finish chunk only"),
    ("usage count missing", [end("STOP", {**USAGE, "candidatesTokenCount": None})], True, "usage", "usageMetadata.candidatesTokenCount must be an integer >= 0"),
    ("usage count negative", [end("STOP", {**USAGE, "promptTokenCount": -1})], True, "usage", "promptTokenCount must be an integer >= 0"),
    ("usage count bool", [end("STOP", {**USAGE, "thoughtsTokenCount": True})], True, "usage", "thoughtsTokenCount must be an integer"),
    ("usage count float", [end("STOP", {**USAGE, "totalTokenCount": 15.0})], True, "usage", "totalTokenCount must be an integer"),
    ("cached beyond prompt", [end("STOP", {**USAGE, "cachedContentTokenCount": 11})], True, "usage", "cachedContentTokenCount is part of promptTokenCount"),
    ("total without thoughts", [end("STOP", {**USAGE, "thoughtsTokenCount": 2})], True, "usage total", "usage total: totalTokenCount 15 != 10 + 5 + 2"),
    ("total off by one", [end("STOP", {**USAGE, "totalTokenCount": 16})], True, "usage total", "16 != 10 + 5 + 0"),
    ("error code 200", [{"error": {**ERROR["error"], "code": 200}}], True, "error payload", "error payload: error.code must be an integer 400..599, got 200"),
    ("error code a string", [{"error": {**ERROR["error"], "code": "500"}}], True, "error payload", "got '500'"),
    ("error without message", [{"error": {**ERROR["error"], "message": None}}], True, "error payload", "error.message must be a string"),
    ("error status lower-case", [{"error": {**ERROR["error"], "status": "internal"}}], True, "error payload", "error.status must be a google.rpc code, got 'internal'"),
    ("error status missing", [{"error": {"code": 500, "message": "x"}}], True, "error payload", "got None"),
    ("error details not a list", [{"error": {**ERROR["error"], "details": {}}}], True, "error payload", "error.details must be a list"),
    ("error detail without @type", [{"error": {**ERROR["error"], "details": [{}]}}], True, "error payload", "objects with @type"),
    ("error not an object", [{"error": "boom"}], True, "error payload", "error must be an object"),
]  # fmt: skip
# An error object with a second key: the SSE helper writes it as a data: frame (a chunk
# with an error is an error frame there), the array as an element (an error payload).
_ERROR_EXTRA: Frame = {**ERROR, "candidates": []}


@pytest.mark.parametrize("framing", ["sse", "array"])
@pytest.mark.parametrize(
    ("items", "include_thoughts", "rule", "expected"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_rejects_violation(
    items: list[Item], include_thoughts: bool, rule: str, expected: str, framing: Framing
) -> None:
    if framing == "array":
        expected = expected.replace("(frame)", "(element)")
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(frame(items, framing), framing=framing,
                               include_thoughts=include_thoughts)  # fmt: skip
    assert info.value.rule == rule
    assert expected in info.value.message
    assert isinstance(info.value, GlmbridgeError)
    assert info.value.kind is ErrorKind.API_ERROR


def _data(body: Frame | bytes) -> bytes:
    return b"data: " + (body if isinstance(body, bytes) else _json(body)) + b"\n\n"


# (name, raw SSE bytes, rule, message fragment)
INVALID_SSE: list[tuple[str, bytes, str, str]] = [
    ("data: without a space", b"data:" + _json(STOP) + b"\n\n", "sse framing", "event 0 (frame): sse framing: expected 'data: ' or a bare error line"),
    ("SSE comment first", b": keepalive\n\n" + sse([STOP]), "sse comment", "event 0 (frame): sse comment: no SSE comments"),
    ("SSE comment between chunks", sse([C]) + b":\n\n" + sse([STOP]), "sse comment", "event 1 (frame): sse comment"),
    ("event: line", b"event: message\n" + sse([STOP]), "event line", "no event: lines"),
    ("id: line", b"id: 1\n" + sse([STOP]), "sse framing", "got b'id: 1"),
    ("[DONE] after the finish chunk", sse([STOP]) + b"data: [DONE]\n\n", "no [DONE]", "event 1 (frame): no [DONE]"),
    ("CRLF frame ends", sse([C, STOP]).replace(b"\n", b"\r\n"), "sse framing", "a frame is exactly one data: line"),
    ("CR inside a frame", b"data: " + _json(C) + b"\r\n\n" + sse([STOP]), "sse framing", "frames end with \\n\\n (no CR)"),
    ("two data lines in a frame", b"data: " + _json(C) + b"\n" + sse([STOP]), "sse framing", "a frame is exactly one data: line"),
    ("JSON over several lines", b"data: {\n\n" + sse([STOP]), "json body", "event 0 (frame): json body: not valid JSON"),
    ("blank line between frames", sse([C]) + b"\n" + sse([STOP]), "sse framing", "got b'\\ndata: "),
    ("raw U+2028", _data(chunk(text("a\u2028b"))) + sse([STOP]), "line terminator", "raw U+2028/U+2029"),
    ("raw U+2029", _data(chunk(text("\u2029"))) + sse([STOP]), "line terminator", "stall the JS SDK"),
    ("error in a data: frame", sse([C]) + _data(ERROR), "error framing", "event 1 (frame): error framing: a data: error frame is ignored by the JS SDK"),
    ("error with other keys", sse([C, _ERROR_EXTRA]), "error framing", "error framing"),
    ("error line without newline", sse([C]) + _json(ERROR), "sse framing", "a bare error line must end with \\n"),
    ("error line with other keys", sse([C]) + _json(_ERROR_EXTRA) + b"\n", "error payload", 'a bare {"error": {...}} object: no other keys'),
    ("bare chunk line", _json(C) + b"\n" + sse([STOP]), "sse framing", "a bare JSON line must be an error"),
    ("bare line not JSON", sse([C]) + b"{oops}\n", "json body", "not valid JSON"),
    ("blank line after the error", sse([C, ERROR]) + b"\n", "event order", "event 2 (frame): event order: nothing may follow the error"),
    ("two error lines", sse([ERROR, ERROR]), "event order", "nothing may follow the error"),
    ("frame cut at the end", sse([C]) + b'data: {"candidates":[', "truncated stream", "end of stream: truncated stream: the last frame is cut off"),
    ("frame without its blank line", sse([C]) + b"data: " + _json(STOP) + b"\n", "truncated stream", "the last frame is cut off"),
    ("not JSON", b"data: {nope}\n\n", "json body", "event 0 (frame): json body: not valid JSON"),
    ("trailing blank after JSON", b"data: " + _json(STOP) + b" \n\n", "json body", "not exactly one JSON value"),
    ("NaN", b"data: " + _json(STOP).replace(b"10", b"NaN", 1) + b"\n\n", "json body", "not valid JSON"),
    ("JSON array payload", b"data: [1]\n\n", "json body", "a chunk must be a JSON object"),
    ("not UTF-8", b"data: \xff\n\n", "json body", "not valid JSON"),
    ("array framing in SSE mode", array([C, STOP]), "sse framing", "got b'[{"),
]  # fmt: skip

# (name, raw array bytes, rule, message fragment)
INVALID_ARRAY: list[tuple[str, bytes, str, str]] = [
    ("no opening bracket", array([STOP])[1:], "array framing", "event 0 (item): array framing: an array stream starts with '['"),
    ("SSE in array mode", sse([STOP]), "array framing", "starts with '['"),
    ("comma separator", b"[" + _json(C) + b"," + _json(STOP) + b"]", "array framing", "event 0 (chunk): array framing: expected ',\\r\\n' or a final ']', got ',{\"'"),
    ("comma-LF separator", b"[" + _json(C) + b",\n" + _json(STOP) + b"]", "array framing", "got ',\\n{'"),
    ("pretty separator", b"[" + _json(C) + b"\r\n," + _json(STOP) + b"]", "array framing", "expected ',\\r\\n'"),
    ("junk after the bracket", array([STOP]) + b"\n", "array framing", "or a final ']'"),
    ("two arrays", array([C]) + array([STOP]), "array framing", "or a final ']'"),
    ("blank before an element", b"[ " + _json(STOP) + b"]", "json body", "event 0 (element): json body: not valid JSON"),
    ("trailing separator", b"[" + _json(STOP) + b",\r\n]", "array framing", "event 1 (element): array framing: a ',\\r\\n' must be followed by an element"),
    ("not closed", array([C, STOP])[:-1], "truncated stream", "end of stream: truncated stream: the array is not closed with ']'"),
    ("cut inside an element", array([C, STOP])[:-20], "truncated stream", "cut inside element 1"),
    ("cut after a separator", b"[" + _json(C) + b",\r\n", "truncated stream", "the array ends after '[' or a separator"),
    ("only the bracket", b"[", "truncated stream", "the array ends after '['"),
    ("empty array", b"[]", "truncated stream", "ended before the first chunk"),
    ("element not JSON", b"[{nope},\r\n" + _json(STOP) + b"]", "json body", "not valid JSON"),
    ("element not an object", b"[1]", "json body", "a chunk must be a JSON object"),
    ("not UTF-8", b"[\xff]", "json body", "the array is not UTF-8"),
    ("comma-CR separator", b"[" + _json(C) + b",\r" + _json(STOP) + b"]", "array framing", "got ',\\r{'"),
    ("element after the error", array([C, ERROR, STOP]), "event order", "event 2 (element): event order: nothing may follow the error"),
    ("error not last", array([ERROR, C]), "event order", "nothing may follow the error"),
    ("error with other keys", array([C, _ERROR_EXTRA]), "error payload", "no other keys"),
    ("error not closed", array([C, ERROR])[:-1], "truncated stream", "not closed with ']'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "rule", "expected"), [c[1:] for c in INVALID_SSE], ids=[c[0] for c in INVALID_SSE]
)
def test_rejects_sse_framing_violation(raw: bytes, rule: str, expected: str) -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(raw, framing="sse")
    assert info.value.rule == rule
    assert expected in info.value.message


@pytest.mark.parametrize(
    ("raw", "rule", "expected"), [c[1:] for c in INVALID_ARRAY], ids=[c[0] for c in INVALID_ARRAY]
)
def test_rejects_array_framing_violation(raw: bytes, rule: str, expected: str) -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(raw, framing="array")
    assert info.value.rule == rule
    assert expected in info.value.message


def test_rule_and_position_attributes() -> None:
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(sse([C, C, STOP, C]))
    assert (info.value.rule, info.value.position) == ("event order", 3)
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(array([C, C]), framing="array")
    assert (info.value.rule, info.value.position) == ("truncated stream", None)
    with pytest.raises(StreamGrammarError) as info:
        validate_gemini_stream(array([C, chunk(text(""))]), framing="array")
    assert (info.value.rule, info.value.position) == ("empty text", 1)


def test_escaped_line_terminators_are_fine() -> None:
    raw = sse([chunk(text("a\u2028b")), STOP]).replace("\u2028".encode(), b"\\u2028")
    assert validate_gemini_stream(raw) == folded(text("a\u2028b"))


# -- no wrong JSON shape escapes as anything but StreamGrammarError --------------------

_WRONG_VALUES: list[Any] = [None, True, -1, 1.5, "x", [], {}, DROP]


_FUZZ_BASES: list[list[Frame]] = [
    [f for f in FULL if isinstance(f, dict)],
    [chunk(text("par")), chunk(call("f", {"a": 1}, "c")), ERROR],
]


@pytest.mark.parametrize("framing", ["sse", "array"])
@pytest.mark.parametrize("base", _FUZZ_BASES, ids=["finished", "failed"])
def test_wrong_json_shapes_only_raise_grammar_errors(base: list[Frame], framing: Framing) -> None:
    # Every value of every chunk replaced by values of other types (or dropped): the
    # validator may accept or reject, but never crash with KeyError/TypeError.
    variants = 0
    for position, body in enumerate(base):
        for path in json_paths(body):
            for value in _WRONG_VALUES:
                if value is DROP and path.split(".")[-1].isdigit():
                    continue
                mutated: list[Item] = [
                    *base[:position],
                    with_value(body, path, value),
                    *base[position + 1 :],
                ]
                variants += 1
                with contextlib.suppress(StreamGrammarError):
                    validate_gemini_stream(frame(mutated, framing), framing=framing)
    assert variants > 200
