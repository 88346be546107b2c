"""The Chat door's remembered ``tools`` arrays (issue 22): a resent array gives the same IR
tools, and every request, remembered or not, decodes and reaches the upstream exactly as a
fresh one."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge.errors import ClientRequestError
from glmbridge.exchange import Exchange
from glmbridge.profiles import PROFILES
from glmbridge.protocols.openai import CHAT_DOOR, door_request, upstream_request

_names = st.text("abcdefgh_", min_size=1, max_size=8)
_texts = st.none() | st.text(max_size=20)
_schemas = st.sampled_from(
    [None, {"type": "object"}, {"type": "object", "properties": {"a": {"type": "number"}}}]
)


def _function(name: str, description: str | None, schema: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    if description is not None:
        fn["description"] = description
    if schema is not None:
        fn["parameters"] = schema
    return {"type": "function", "function": fn}


def _custom(name: str, description: str | None, grammar: str | None) -> dict[str, Any]:
    custom: dict[str, Any] = {"name": name, "description": description}
    if grammar:
        custom["format"] = {"type": "grammar", "grammar": {"definition": grammar}}
    return {"type": "custom", "custom": custom}


_tools = st.lists(
    st.builds(_function, _names, _texts, _schemas)
    | st.builds(_custom, _names, _texts, st.none() | st.text(min_size=1, max_size=10)),
    max_size=6,
)


def _body(tools: Any, indent: int | None = None) -> bytes:
    request = {"model": "glm-5.3", "messages": [{"role": "user", "content": "hi"}],
               "stream": True, "tools": tools}  # fmt: skip
    return json.dumps(request, indent=indent).encode()


def _forget() -> None:
    door_request._RECENT_TOOLS.clear()
    upstream_request._TOOLS_JSON.clear()


def _upstream_body(body: bytes) -> bytes:
    req = CHAT_DOOR.decode_request(body)
    return Exchange.from_request(CHAT_DOOR, req, upstream=PROFILES["zai-coding"]).body


@settings(max_examples=150, deadline=None)
@given(_tools, _tools, st.sampled_from([None, 1]))
def test_a_remembered_array_decodes_and_encodes_as_a_fresh_one(
    tools: Any, before: Any, indent: int | None
) -> None:
    body = _body(tools, indent)
    _forget()
    try:
        fresh = CHAT_DOOR.decode_request(body)
        fresh_upstream = _upstream_body(body)
    except ClientRequestError as err:  # e.g. two tools of one name: refused every time
        with pytest.raises(ClientRequestError, match=str(err.args[0])[:20]):
            CHAT_DOOR.decode_request(body)
        return
    _forget()
    CHAT_DOOR.decode_request(_body(before))  # another array remembered first
    for _ in range(2):  # remembered, then hit
        again = CHAT_DOOR.decode_request(body)
        assert again == fresh
        assert _upstream_body(body) == fresh_upstream
    # the general path: the tools decoded with the body, as one typed field
    whole = msgspec.json.decode(body, type=_TypedTools)
    assert again.tools == [door_request._tool(t) for t in whole.tools or ()]


class _TypedTools(msgspec.Struct):
    tools: list[door_request.FunctionTool | door_request.CustomTool] | None = None


def test_a_resent_array_gives_the_same_objects_and_the_same_upstream_json() -> None:
    tools = [_function(f"tool_{i}", "does a thing", {"type": "object"}) for i in range(5)]
    body = _body(tools)
    _forget()
    first, second = CHAT_DOOR.decode_request(body), CHAT_DOOR.decode_request(body)
    assert all(a is b for a, b in zip(first.tools, second.tools, strict=True))
    assert first.tools is not second.tools  # a new list each time
    assert _upstream_body(body) == _upstream_body(body)
    assert len(upstream_request._TOOLS_JSON) == 1


def test_an_invalid_tools_array_is_refused_with_its_path_every_time() -> None:
    _forget()
    cases = ((5, "tools: expected `array`"), ([{"type": "function"}], "tools.0.function: required"),
             ([{"type": "x"}], "tools.0.type: invalid value"))  # fmt: skip
    for value, message in cases:
        for _ in range(2):
            with pytest.raises(ClientRequestError, match=rf"^{message}"):
                CHAT_DOOR.decode_request(_body(value))
    assert CHAT_DOOR.decode_request(_body(None)).tools == []
