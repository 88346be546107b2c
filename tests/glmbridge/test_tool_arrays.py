"""The Chat and Responses doors' remembered ``tools`` arrays (:class:`glmbridge.memo.RecentArrays`,
issue 22) against their general path: a resent array gives the same IR tools, and every
request, remembered or not, decodes and reaches the upstream exactly as a fresh one; the chat
upstream remembers a list's JSON also with a server tool in it (Codex offers web_search every
turn), still logging the dropped tool each time."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.exchange import Exchange, FrontDoor
from glmbridge.profiles import PROFILES
from glmbridge.protocols.openai import CHAT_DOOR, upstream_request
from glmbridge.protocols.openai import door_request as chat_request
from glmbridge.protocols.responses import RESPONSES_DOOR
from glmbridge.protocols.responses import door_request as responses_request

CODEX = Path(__file__).parent.parent / "fixtures" / "codex" / "models-2.json"

_names = st.text("abcdefgh_", min_size=1, max_size=8)
_texts = st.none() | st.text(max_size=20)
_schemas = st.sampled_from(
    [None, {"type": "object"}, {"type": "object", "properties": {"a": {"type": "string"}}}]
)


def _function(name: str, description: str | None, schema: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": name}
    if description is not None:
        tool["description"] = description
    if schema is not None:
        tool["parameters"] = schema
    return tool


_functions = st.builds(_function, _names, _texts, _schemas)
_customs = st.builds(
    lambda name, description, grammar: {
        "type": "custom",
        "name": name,
        "description": description,
        **(
            {"format": {"type": "grammar", "syntax": "lark", "definition": grammar}}
            if grammar
            else {}
        ),  # fmt: skip
    },
    _names,
    _texts,
    st.none() | st.text(min_size=1, max_size=10),
)
_namespaces = st.builds(
    lambda name, inner: {"type": "namespace", "name": name, "tools": inner},
    _names,
    st.lists(_functions, max_size=3),
)
_others = st.sampled_from([
    {"type": "web_search"},
    {"type": "web_search", "external_web_access": False},
    {"type": "web_search", "filters": {"allowed_domains": ["example.com"]}},
    {"type": "file_search", "vector_store_ids": ["v"]},
    {"type": "no_such_tool"},
])  # fmt: skip
_responses_tools = st.lists(_functions | _customs | _namespaces | _others, max_size=6)


def _chat_function(name: str, description: str | None, schema: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    if description is not None:
        fn["description"] = description
    if schema is not None:
        fn["parameters"] = schema
    return {"type": "function", "function": fn}


def _chat_custom(name: str, description: str | None, grammar: str | None) -> dict[str, Any]:
    custom: dict[str, Any] = {"name": name, "description": description}
    if grammar:
        custom["format"] = {"type": "grammar", "grammar": {"definition": grammar}}
    return {"type": "custom", "custom": custom}


_chat_tools = st.lists(
    st.builds(_chat_function, _names, _texts, _schemas)
    | st.builds(_chat_custom, _names, _texts, st.none() | st.text(min_size=1, max_size=10)),
    max_size=6,
)


def _responses_body(tools: Any, indent: int | None = None) -> bytes:
    request = {"model": "glm-5.3", "input": "hi", "stream": True, "tools": tools}
    return json.dumps(request, indent=indent).encode()


def _chat_body(tools: Any, indent: int | None = None) -> bytes:
    request = {"model": "glm-5.3", "messages": [{"role": "user", "content": "hi"}],
               "stream": True, "tools": tools}  # fmt: skip
    return json.dumps(request, indent=indent).encode()


def _forget() -> None:
    """Empty every memo of tools arrays and of their upstream JSON."""
    chat_request._RECENT_TOOLS.clear()
    responses_request._RECENT_TOOLS.clear()
    upstream_request._TOOLS_JSON.clear()


def _upstream_body(door: FrontDoor, body: bytes) -> bytes:
    """The GLM chat body ``door`` makes of ``body``."""
    req = door.decode_request(body)
    return Exchange.from_request(door, req, upstream=PROFILES["zai-coding"]).body


def _assert_remembered_like_fresh(door: FrontDoor, body: bytes, other: bytes) -> ir.Request | None:
    """Decode ``body`` with nothing remembered, then twice more after ``other`` (another
    array remembered first: the first decode of ``body`` remembers it, the second finds it);
    every decode and upstream body must equal the fresh ones. Returns the last request, or
    ``None`` when ``body`` is refused (then it must be refused every time)."""
    _forget()
    try:
        fresh = door.decode_request(body)
        fresh_upstream = _upstream_body(door, body)
    except ClientRequestError as err:  # e.g. two tools of one name
        with pytest.raises(ClientRequestError, match=re.escape(str(err.args[0])[:20])):
            door.decode_request(body)
        return None
    _forget()
    door.decode_request(other)
    again = fresh
    for _ in range(2):
        again = door.decode_request(body)
        assert again == fresh
        assert _upstream_body(door, body) == fresh_upstream
    return again


class _TypedTools(msgspec.Struct):
    tools: list[chat_request.FunctionTool | chat_request.CustomTool] | None = None


def _general_chat(req: ir.Request, body: bytes) -> None:
    """The Chat door's general path: the tools decoded with the body, one typed field."""
    whole = msgspec.json.decode(body, type=_TypedTools)
    assert req.tools == [chat_request._tool(t) for t in whole.tools or ()]


def _general_responses(req: ir.Request, body: bytes) -> None:
    """The Responses door's general path: each tool of the array decoded (the response
    object echoes the array as it does)."""
    raws = msgspec.json.decode(body, type=dict[str, msgspec.Raw])["tools"]
    general = responses_request._tools(msgspec.json.decode(raws, type=list[msgspec.Raw]))
    assert list(general.tools) == req.tools
    assert bytes(req.echo["tools"]) == bytes(general.echo)


_DOORS = {
    "chat": (CHAT_DOOR, _chat_body, _chat_tools, _general_chat),
    "responses": (RESPONSES_DOOR, _responses_body, _responses_tools, _general_responses),
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_DOORS)), st.sampled_from([None, 1]), st.data())
def test_a_remembered_array_decodes_and_encodes_as_a_fresh_one(
    name: str, indent: int | None, data: st.DataObject
) -> None:
    door, make_body, tools, general = _DOORS[name]
    body = make_body(data.draw(tools), indent)
    again = _assert_remembered_like_fresh(door, body, make_body(data.draw(tools)))
    if again is not None:
        general(again, body)


def test_codex_tools_come_back_as_the_same_objects_and_the_same_upstream_json() -> None:
    body = json.dumps(json.loads(CODEX.read_text())["body"]).encode()
    _forget()
    first = RESPONSES_DOOR.decode_request(body)
    second = RESPONSES_DOOR.decode_request(body)
    assert len(first.tools) == 14  # web_search, and the namespace's five tools flattened
    assert any(t.server_type == "web_search" for t in first.tools)
    assert all(a is b for a, b in zip(first.tools, second.tools, strict=True))
    assert first.tools is not second.tools  # a new list each time
    up = Exchange.from_request(RESPONSES_DOOR, first, upstream=PROFILES["zai-coding"]).body
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1  # remembered with its server tool
    assert Exchange.from_request(RESPONSES_DOOR, second, upstream=PROFILES["zai-coding"]).body == up
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1


def test_settings_and_dropped_tools_are_not_remembered(caplog: pytest.LogCaptureFixture) -> None:
    _forget()
    search = {"type": "web_search", "filters": {"allowed_domains": ["example.com"]}}
    body = _responses_body([search])
    first, second = RESPONSES_DOOR.decode_request(body), RESPONSES_DOOR.decode_request(body)
    assert first.tools[0].config == {"allowed_domains": ["example.com"]}
    assert first.tools[0] is not second.tools[0]
    assert len(responses_request._RECENT_TOOLS) == 0
    with caplog.at_level(logging.INFO, logger="glmbridge.protocols.responses"):
        for _ in range(2):
            RESPONSES_DOOR.decode_request(_responses_body([{"type": "file_search"}]))
    assert sum("hosted tool" in r.getMessage() for r in caplog.records) == 2


def test_a_dropped_server_tool_is_logged_on_every_request(caplog: pytest.LogCaptureFixture) -> None:
    _forget()
    body = _responses_body([{"type": "web_search"}, _function("f", None, None)])
    with caplog.at_level(logging.DEBUG, logger="glmbridge.protocols.openai"):
        bodies = {_upstream_body(RESPONSES_DOOR, body) for _ in range(3)}
    assert len(bodies) == 1
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1
    assert sum("not sent upstream" in r.getMessage() for r in caplog.records) == 3


def test_an_invalid_tools_array_is_refused_with_its_path() -> None:
    _forget()
    for value, path in ((5, "tools"), ([{"type": "function"}], "tools.0.name")):
        for _ in range(2):
            with pytest.raises(ClientRequestError, match=rf"^{path}: "):
                RESPONSES_DOOR.decode_request(_responses_body(value))
    assert RESPONSES_DOOR.decode_request(_responses_body(None)).tools == []
    assert bytes(RESPONSES_DOOR.decode_request(_responses_body(None)).echo["tools"]) == b"[]"


def test_a_resent_array_gives_the_same_objects_and_the_same_upstream_json() -> None:
    tools = [_chat_function(f"tool_{i}", "does a thing", {"type": "object"}) for i in range(5)]
    body = _chat_body(tools)
    _forget()
    first, second = CHAT_DOOR.decode_request(body), CHAT_DOOR.decode_request(body)
    assert all(a is b for a, b in zip(first.tools, second.tools, strict=True))
    assert first.tools is not second.tools  # a new list each time
    assert _upstream_body(CHAT_DOOR, body) == _upstream_body(CHAT_DOOR, body)
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1


def test_an_invalid_tools_array_is_refused_with_its_path_every_time() -> None:
    _forget()
    cases = ((5, "tools: expected `array`"), ([{"type": "function"}], "tools.0.function: required"),
             ([{"type": "x"}], "tools.0.type: invalid value"))  # fmt: skip
    for value, message in cases:
        for _ in range(2):
            with pytest.raises(ClientRequestError, match=rf"^{message}"):
                CHAT_DOOR.decode_request(_chat_body(value))
    assert CHAT_DOOR.decode_request(_chat_body(None)).tools == []
