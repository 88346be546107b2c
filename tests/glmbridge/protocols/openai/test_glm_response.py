"""GLM non-stream responses, upstream errors, ids and tool-argument repair.

Golden files: ``tests/fixtures/glm/resp_<case>.json`` (upstream bodies written from
wire-specs A.8/A.11) and ``resp_<case>.expected.json`` (the reviewed IR response, or
the error it raises). Regenerate with ``GLMBRIDGE_UPDATE_GOLDENS=1``.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from glmbridge import ids, ir
from glmbridge._tool_args import ArgsScanner, complete_json, parse_arguments, repair_arguments
from glmbridge.errors import ErrorKind, UpstreamError, UpstreamProtocolError
from glmbridge.protocols import openai as oa

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "glm"
UPDATE = os.environ.get("GLMBRIDGE_UPDATE_GOLDENS") == "1"
RESPONSE_CASES = sorted(
    p.stem for p in FIXTURES.glob("resp_*.json") if not p.name.endswith(".expected.json")
)
_GENERATED = re.compile(r"(msg|toolu)_[0-9A-Za-z]{24}")


def _normalize(obj: Any) -> Any:
    text = msgspec.json.encode(obj).decode()
    return json.loads(_GENERATED.sub(lambda m: f"{m.group(1)}_<generated>", text))


def _error_dict(err: UpstreamError) -> dict[str, Any]:
    return {
        "kind": err.kind,
        "status_hint": err.status_hint,
        "retryable": err.retryable,
        "code": err.code,
        "message": err.message,
    }


@pytest.mark.parametrize("case", RESPONSE_CASES)
def test_golden_response(case: str) -> None:
    body = (FIXTURES / f"{case}.json").read_bytes()
    try:
        actual = {"response": _normalize(oa.response_to_ir(body, model="claude-opus-4-1"))}
    except UpstreamError as err:
        actual = {"error": _normalize(_error_dict(err))}
    path = FIXTURES / f"{case}.expected.json"
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert actual == json.loads(path.read_text())


def _body(message: dict[str, Any], finish: str = "stop", **extra: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return json.dumps({"choices": [choice], **extra}).encode()


def test_response_id_is_fresh_and_model_is_echoed() -> None:
    a = oa.response_to_ir(_body({"content": "x"}), model="claude-haiku")
    b = oa.response_to_ir(_body({"content": "x"}), model="claude-haiku")
    assert a.model == "claude-haiku" and re.fullmatch(r"msg_[0-9A-Za-z]{24}", a.id)
    assert a.id != b.id


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 179,
                "completion_tokens": 42,
                "prompt_tokens_details": {"cached_tokens": 43},
            },
            ir.Usage(input_tokens=136, output_tokens=42, cache_read_input_tokens=43),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 50},
            },  # inconsistent upstream numbers
            ir.Usage(input_tokens=0, output_tokens=1, cache_read_input_tokens=50),
        ),
        (
            {
                "prompt_tokens": 5,
                "completion_tokens": 9,
                "completion_tokens_details": {"reasoning_tokens": 7},
            },
            ir.Usage(input_tokens=5, output_tokens=9, reasoning_tokens=7),
        ),
        (None, ir.Usage()),
    ],
)
def test_usage_mapping(usage: dict[str, Any] | None, expected: ir.Usage) -> None:
    extra = {"usage": usage} if usage is not None else {}
    assert oa.response_to_ir(_body({"content": "x"}, **extra), model="m").usage == expected


@pytest.mark.parametrize(
    ("finish", "with_tool", "expected"),
    [
        ("stop", False, ir.StopReason.END_TURN),
        ("stop", True, ir.StopReason.TOOL_USE),
        ("length", True, ir.StopReason.MAX_TOKENS),
        ("tool_calls", False, ir.StopReason.END_TURN),
        ("tool_calls", True, ir.StopReason.TOOL_USE),
        ("sensitive", False, ir.StopReason.REFUSAL),
        ("content_filter", False, ir.StopReason.REFUSAL),
        ("model_context_window_exceeded", False, ir.StopReason.MODEL_CONTEXT_WINDOW_EXCEEDED),
        ("something_new", False, ir.StopReason.END_TURN),
        (None, False, ir.StopReason.END_TURN),
    ],
)
def test_finish_reason_mapping(
    finish: str | None, with_tool: bool, expected: ir.StopReason
) -> None:
    message: dict[str, Any] = {"content": "x"}
    if with_tool:
        message["tool_calls"] = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    resp = oa.response_to_ir(_body(message, finish), model="m")  # type: ignore[arg-type]
    assert resp.stop_reason is expected


def test_network_error_raises_retryable_api_error() -> None:
    with pytest.raises(UpstreamError) as info:
        oa.response_to_ir(_body({"content": "x"}, "network_error"), model="m")
    assert info.value.kind is ErrorKind.API_ERROR and info.value.retryable


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"choices": []}',
        b'{"choices": [{"index": 0}]}',
        b'{"choices": [{"message": {"content": 3}}]}',
    ],
)
def test_bad_bodies_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        oa.response_to_ir(body, model="m")


def test_tool_id_is_sanitized_and_missing_id_generated() -> None:
    calls = [
        {"id": "functions.Bash:0", "function": {"name": "Bash", "arguments": "{}"}},
        {"function": {"name": "Read", "arguments": "{}"}},
    ]
    resp = oa.response_to_ir(_body({"tool_calls": calls}, "tool_calls"), model="m")
    a, b = resp.content
    assert isinstance(a, ir.ToolUseBlock) and isinstance(b, ir.ToolUseBlock)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", a.id) and a.id.startswith("functions_Bash_0_")
    assert re.fullmatch(r"toolu_[0-9A-Za-z]{24}", b.id)


# --- upstream errors -----------------------------------------------------------------

ERROR_CASES = [
    # (status, body, kind, status_hint, retryable, message startswith)
    (
        401,
        {"error": {"code": "1002", "message": "Invalid token"}},
        ErrorKind.AUTHENTICATION,
        401,
        False,
        "[1002] Invalid token",
    ),
    (
        429,
        {"error": {"code": "1113", "message": "Insufficient balance"}},
        ErrorKind.RATE_LIMIT,
        429,
        False,
        "[1113] Insufficient balance (GLM quota or balance",
    ),
    (
        429,
        {"error": {"code": 1308, "message": "Usage limit reached"}},
        ErrorKind.RATE_LIMIT,
        429,
        False,
        "[1308] Usage limit reached (GLM quota",
    ),
    (
        429,
        {"error": {"code": "1302", "message": "High concurrency"}},
        ErrorKind.RATE_LIMIT,
        429,
        True,
        "[1302] High concurrency",
    ),
    (
        429,
        {"error": {"code": "1312", "message": "busy"}},
        ErrorKind.RATE_LIMIT,
        429,
        True,
        "[1312]",
    ),
    (
        429,
        {"error": {"code": "1304", "message": "daily"}},
        ErrorKind.RATE_LIMIT,
        429,
        False,
        "[1304]",
    ),
    (
        400,
        {"error": {"code": "1261", "message": "Prompt exceeds max length"}},
        ErrorKind.INVALID_REQUEST,
        400,
        False,
        "[1261] Prompt exceeds max length (prompt is too long)",
    ),
    (
        400,
        {"error": {"code": "1214", "message": "invalid messages"}},
        ErrorKind.INVALID_REQUEST,
        400,
        False,
        "[1214] invalid messages",
    ),
    (
        400,
        {"error": {"code": "1211", "message": "Unknown Model"}},
        ErrorKind.NOT_FOUND,
        404,
        False,
        "[1211] Unknown Model",
    ),
    (
        403,
        {"error": {"code": "1220", "message": "no permission"}},
        ErrorKind.PERMISSION,
        403,
        False,
        "[1220]",
    ),
    (
        400,
        {"error": {"code": "1301", "message": "unsafe content"}},
        ErrorKind.INVALID_REQUEST,
        400,
        False,
        "[1301] unsafe content (content policy)",
    ),
    (
        429,
        {"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}},
        ErrorKind.RATE_LIMIT,
        429,
        True,
        "[rate_limit_exceeded] Rate limit",
    ),
    (
        400,
        {"error": {"message": "bad", "type": "invalid_request_error", "code": None}},
        ErrorKind.INVALID_REQUEST,
        400,
        False,
        "bad",
    ),
    (413, None, ErrorKind.REQUEST_TOO_LARGE, 413, False, "upstream HTTP 413"),
    (500, None, ErrorKind.API_ERROR, 500, True, "upstream HTTP 500"),
    (502, None, ErrorKind.OVERLOADED, 529, True, "upstream HTTP 502"),
    (503, None, ErrorKind.OVERLOADED, 529, True, "upstream HTTP 503"),
    (529, None, ErrorKind.OVERLOADED, 529, True, "upstream HTTP 529"),
    (504, None, ErrorKind.OVERLOADED, 529, True, "upstream HTTP 504"),
    (404, None, ErrorKind.NOT_FOUND, 404, False, "upstream HTTP 404"),
    (403, None, ErrorKind.PERMISSION, 403, False, "upstream HTTP 403"),
    (418, None, ErrorKind.INVALID_REQUEST, 400, False, "upstream HTTP 418"),
    (
        500,
        {"code": 500, "msg": "Internal error", "success": False},
        ErrorKind.API_ERROR,
        500,
        True,
        "[500] Internal error",
    ),
]


@pytest.mark.parametrize(("status", "body", "kind", "hint", "retryable", "message"), ERROR_CASES)
def test_error_from_upstream(
    status: int, body: Any, kind: ErrorKind, hint: int, retryable: bool, message: str
) -> None:
    raw = b"<html>Bad Gateway</html>" if body is None else json.dumps(body).encode()
    err = oa.error_from_upstream(status, raw, retry_after=2.5)
    assert (err.kind, err.status_hint, err.retryable) == (kind, hint, retryable)
    assert err.message.startswith(message), err.message
    assert err.status == status and err.retry_after == 2.5
    assert "<html>" not in err.message


def test_error_code_is_kept_as_string() -> None:
    err = oa.error_from_upstream(429, b'{"error": {"code": 1302, "message": "x"}}')
    assert err.code == "1302"


# --- ids -------------------------------------------------------------------------------


def test_id_factories() -> None:
    assert re.fullmatch(r"msg_[0-9A-Za-z]{24}", ids.new_message_id())
    assert re.fullmatch(r"toolu_[0-9A-Za-z]{24}", ids.new_tool_use_id())
    assert len({ids.new_message_id() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("call_-8303649628005950554", "call_-8303649628005950554"),
        ("toolu_01ABC", "toolu_01ABC"),
        ("functions.Bash:0", None),
        ("", None),
        ("日本", None),
    ],
)
def test_sanitize_tool_id(raw: str, expected: str | None) -> None:
    out = ids.sanitize_tool_id(raw)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", out)
    assert out == ids.sanitize_tool_id(raw)  # deterministic
    if expected is not None:
        assert out == expected


def test_sanitize_tool_id_avoids_collisions() -> None:
    assert ids.sanitize_tool_id("a.b") != ids.sanitize_tool_id("a:b")
    assert ids.sanitize_tool_id("a.b") != "a_b"


def test_thinking_signature_is_namespaced_and_deterministic() -> None:
    sig = ids.thinking_signature("some reasoning")
    assert sig == ids.thinking_signature("some reasoning") != ids.thinking_signature("other")
    assert sig.startswith("glmbridge.v1.") and ids.is_glmbridge_signature(sig)
    assert not ids.is_glmbridge_signature("EqQBCkYIBRgCKkA") and not ids.is_glmbridge_signature(
        None
    )


# --- tool arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ('{"a": 1}', ""),
        ('{"a": "hel', '"}'),
        ('{"a": "he\\', '\\"}'),
        ('{"a": "\\u12', '00"}'),
        ('{"ab', '":null}'),
        ('{"a":', "null}"),
        ('{"a": tr', "ue}"),
        ('{"a": [1, {"b": [', "]}]}"),
        ('{"a": -', "0}"),
        ('{"a": 1.5e', "0}"),
        ("[1, 2", "]"),
        ('{"a":1,', None),
        ("{a", None),
        ("", None),
    ],
)
def test_complete_json(prefix: str, suffix: str | None) -> None:
    assert complete_json(prefix) == suffix
    if suffix is not None:
        json.loads(prefix + suffix)


@pytest.mark.parametrize(
    ("text", "expected", "repaired"),
    [
        ('{"a": 1}', {"a": 1}, False),
        ("", {}, False),
        ("  ", {}, False),
        ('{"cmd": "ls", "timeout": 12', {"cmd": "ls"}, True),  # the cut number is dropped
        ('{"cmd": "ls", "timeout": 12 ', {"cmd": "ls", "timeout": 12}, True),
        ('{"a": "x', {"a": "x"}, True),
        ("[1, 2]", {"value": [1, 2]}, True),
        ('"text"', {"value": "text"}, True),
        ("not json", {}, True),
        ('{"a": 1}}', {"a": 1}, True),
    ],
)
def test_parse_arguments(text: str, expected: dict[str, Any], repaired: bool) -> None:
    assert parse_arguments(text) == (expected, repaired)


def test_scanner_forwarded_text_is_independent_of_fragmentation() -> None:
    doc = json.dumps(
        {"path": '/a/"b"\\c é \u2603 😀', "n": [1, -2.5e3, True, False, None, {"x": []}], "o": {}}
    )
    rng = random.Random(7)
    for cut in range(len(doc) + 1):
        prefix = doc[:cut]
        whole = msgspec.json.decode(repair_arguments(prefix))  # strict: no lone surrogates
        assert isinstance(whole, dict)
        scanner, pieces, i = ArgsScanner(), [], 0
        while i < len(prefix):
            j = i + rng.randint(1, 5)
            pieces.append(scanner.feed(prefix[i:j]))
            i = j
        pieces.append(scanner.finish())
        assert msgspec.json.decode("".join(pieces)) == whole
