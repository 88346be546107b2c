"""The Responses door's per-request fast paths (issue 22) against its general paths: the
remembered ``tools`` arrays and the chat upstream's remembered tools JSON with a server tool
in the list (a resent array gives the same IR tools, and every request, remembered or not,
decodes and reaches the upstream exactly as a fresh one), and the stream's response-object
events framed around the object's JSON, byte for byte as encoding them whole."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge.errors import ClientRequestError
from glmbridge.exchange import Exchange
from glmbridge.profiles import PROFILES
from glmbridge.protocols.openai import upstream_request
from glmbridge.protocols.responses import RESPONSES_DOOR, door_request
from glmbridge.protocols.responses.door_stream import StreamEncoder

CODEX = Path(__file__).parents[3] / "fixtures" / "codex" / "models-2.json"

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
_tools = st.lists(_functions | _customs | _namespaces | _others, max_size=6)


def _body(tools: Any, indent: int | None = None) -> bytes:
    request = {"model": "glm-5.3", "input": "hi", "stream": True, "tools": tools}
    return json.dumps(request, indent=indent).encode()


def _forget() -> None:
    door_request._RECENT_TOOLS.clear()
    upstream_request._TOOLS_JSON.clear()


def _upstream_body(body: bytes) -> bytes:
    req = RESPONSES_DOOR.decode_request(body)
    return Exchange.from_request(RESPONSES_DOOR, req, upstream=PROFILES["zai-coding"]).body


@settings(max_examples=150, deadline=None)
@given(_tools, _tools, st.sampled_from([None, 1]))
def test_a_remembered_array_decodes_and_encodes_as_a_fresh_one(
    tools: Any, before: Any, indent: int | None
) -> None:
    body = _body(tools, indent)
    _forget()
    try:
        fresh = RESPONSES_DOOR.decode_request(body)
        fresh_upstream = _upstream_body(body)
    except ClientRequestError as err:  # e.g. two tools of one name: refused every time
        with pytest.raises(ClientRequestError, match=str(err.args[0])[:20]):
            RESPONSES_DOOR.decode_request(body)
        return
    _forget()
    RESPONSES_DOOR.decode_request(_body(before))  # another array remembered first
    for _ in range(2):  # remembered (when shareable) and hit
        again = RESPONSES_DOOR.decode_request(body)
        assert again == fresh
        assert bytes(again.echo["tools"]) == bytes(fresh.echo["tools"])
        assert _upstream_body(body) == fresh_upstream
        # the response object echoes the array exactly as the general path does
        raws = msgspec.json.decode(body, type=dict[str, msgspec.Raw])["tools"]
        general = door_request._tools(msgspec.json.decode(raws, type=list[msgspec.Raw]))
        assert bytes(again.echo["tools"]) == bytes(general.echo)


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
    assert len(upstream_request._TOOLS_JSON) == 1  # remembered with its server tool
    assert Exchange.from_request(RESPONSES_DOOR, second, upstream=PROFILES["zai-coding"]).body == up
    assert len(upstream_request._TOOLS_JSON) == 1


def test_settings_and_dropped_tools_are_not_remembered(caplog: pytest.LogCaptureFixture) -> None:
    _forget()
    search = {"type": "web_search", "filters": {"allowed_domains": ["example.com"]}}
    body = _body([search])
    first, second = RESPONSES_DOOR.decode_request(body), RESPONSES_DOOR.decode_request(body)
    assert first.tools[0].config == {"allowed_domains": ["example.com"]}
    assert first.tools[0] is not second.tools[0]
    assert len(door_request._RECENT_TOOLS) == 0
    with caplog.at_level(logging.INFO, logger="glmbridge.protocols.responses"):
        for _ in range(2):
            RESPONSES_DOOR.decode_request(_body([{"type": "file_search"}]))
    assert sum("hosted tool" in r.getMessage() for r in caplog.records) == 2


def test_a_dropped_server_tool_is_logged_on_every_request(caplog: pytest.LogCaptureFixture) -> None:
    _forget()
    body = _body([{"type": "web_search"}, _function("f", None, None)])
    with caplog.at_level(logging.DEBUG, logger="glmbridge.protocols.openai"):
        bodies = {_upstream_body(body) for _ in range(3)}
    assert len(bodies) == 1
    assert len(upstream_request._TOOLS_JSON) == 1
    assert sum("not sent upstream" in r.getMessage() for r in caplog.records) == 3


def test_an_invalid_tools_array_is_refused_with_its_path() -> None:
    _forget()
    for value, path in ((5, "tools"), ([{"type": "function"}], "tools.0.name")):
        for _ in range(2):
            with pytest.raises(ClientRequestError, match=rf"^{path}: "):
                RESPONSES_DOOR.decode_request(_body(value))
    assert RESPONSES_DOOR.decode_request(_body(None)).tools == []
    assert bytes(RESPONSES_DOOR.decode_request(_body(None)).echo["tools"]) == b"[]"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _json, max_size=4),
       st.lists(st.sampled_from(["response.created", "response.in_progress",
                                 "response.completed", "response.failed"]), min_size=1,
                max_size=3),
       st.integers(0, 10_000))  # fmt: skip
def test_response_events_are_framed_as_encoded_events(
    obj: dict[str, Any], kinds: list[str], seq: int
) -> None:
    fast, general = (StreamEncoder(model="m", echo={}, created_at=0) for _ in range(2))
    fast._seq = general._seq = seq
    framed = fast._response_events(msgspec.json.encode(obj), *kinds)
    encoded = b"".join(general._event(kind, {"response": obj}) for kind in kinds)
    assert framed == encoded
    assert fast._seq == general._seq == seq + len(kinds)
