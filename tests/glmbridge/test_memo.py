"""The raw-JSON memo and the Anthropic door's tool memo (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.memo import IdentityMemo, RawMemo
from glmbridge.protocols import anthropic

FIXTURE = Path(__file__).parent.parent / "fixtures" / "claude_code" / "request_main.json"


def _body(**changes: object) -> bytes:
    data = json.loads(FIXTURE.read_text())
    data.update(changes)
    return json.dumps(data).encode()


def test_the_same_tool_bytes_decode_to_the_same_objects() -> None:
    first = anthropic.decode_request(_body())
    second = anthropic.decode_request(_body())
    assert len(first.tools) == 24
    assert all(a is b for a, b in zip(first.tools, second.tools, strict=True))


def test_a_remembered_tool_equals_a_fresh_decode() -> None:
    body = _body()
    memoised = anthropic.decode_request(body).tools
    fresh = [anthropic.door_request._decode_tool(msgspec.Raw(json.dumps(t).encode()), i)
             for i, t in enumerate(json.loads(body)["tools"])]  # fmt: skip
    assert [(t.name, t.description, bytes(t.input_schema)) for t in memoised] == [  # type: ignore[arg-type]
        (t.name, t.description, bytes(t.input_schema))
        for t in fresh  # type: ignore[arg-type]
    ]


def test_a_changed_tool_is_decoded_anew() -> None:
    data = json.loads(FIXTURE.read_text())
    before = anthropic.decode_request(json.dumps(data).encode()).tools
    data["tools"][0]["description"] += " (changed)"
    after = anthropic.decode_request(json.dumps(data).encode()).tools
    assert after[0] is not before[0]
    assert after[0].description == before[0].description + " (changed)"
    assert all(a is b for a, b in zip(before[1:], after[1:], strict=True))


def test_a_remembered_schema_does_not_hold_the_request_body() -> None:
    # A Raw decoded from a buffer holds it (a bytearray with an export cannot be resized);
    # the memo keeps a copy, so the request body is free once the request is done.
    tool = {"name": "held_or_not", "description": "d", "input_schema": {"type": "object"}}
    request = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    body = bytearray(json.dumps({**request, "tools": [tool]}).encode())
    req = anthropic.decode_request(body)
    body.extend(b" ")  # BufferError if the remembered tool still spans the body
    assert msgspec.json.decode(bytes(req.tools[0].input_schema)) == {"type": "object"}  # type: ignore[arg-type]
    control = bytearray(b'{"a": {"x": 1}}')
    held = msgspec.json.decode(control, type=dict[str, msgspec.Raw])
    with pytest.raises(BufferError):
        control.extend(b" ")
    assert held


def test_server_tools_are_not_shared() -> None:
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    body = _body(tools=[search])
    first, second = anthropic.decode_request(body).tools[0], anthropic.decode_request(body).tools[0]
    assert first.server_type == "web_search_20250305"
    assert first.config == {"max_uses": 5}
    assert first is not second and first.config is not second.config


def test_an_invalid_tool_is_refused_every_time() -> None:
    bad = {"name": "x", "input_schema": []}
    for _ in range(2):
        with pytest.raises(ClientRequestError, match=r"tools\.0\.input_schema"):
            anthropic.decode_request(_body(tools=[bad]))


def test_the_memo_is_bounded() -> None:
    memo: RawMemo[int] = RawMemo(max_item=10, max_total=25)
    memo.put(b"x" * 11, 1)  # too long to keep
    assert memo.get(b"x" * 11) is None
    memo.put(b"a" * 10, 1)
    memo.put(b"b" * 10, 2)
    assert (memo.get(b"a" * 10), memo.get(b"b" * 10), len(memo)) == (1, 2, 2)
    memo.put(b"c" * 10, 3)  # 30 > 25: starts over
    assert (memo.get(b"a" * 10), memo.get(b"c" * 10), len(memo)) == (None, 3, 1)


def test_memoised_tools_reach_the_upstream_unchanged() -> None:
    body = _body()
    once = anthropic.decode_request(body)
    twice = anthropic.decode_request(body)
    assert isinstance(once.tools[0], ir.Tool)
    from glmbridge.exchange import Exchange

    a = Exchange.from_request(anthropic.DOOR, once).body
    b = Exchange.from_request(anthropic.DOOR, twice).body
    assert a == b


def test_the_token_estimator_counts_remembered_tools_once_and_alike() -> None:
    from glmbridge.tokens import TokenEstimator, estimate_request_tokens

    estimator = TokenEstimator()
    first = anthropic.decode_request(_body())
    second = anthropic.decode_request(_body())
    assert estimator.request_tokens(first) == estimate_request_tokens(first)
    assert estimator.request_tokens(second) == estimate_request_tokens(second)
    assert len(estimator._tools) == 24  # the second request's tools were the first's
    changed = msgspec.structs.replace(first.tools[0], description="another text")
    assert estimator.tool_tokens(changed) != estimator.tool_tokens(first.tools[0])


def test_the_chat_upstream_encodes_remembered_tools_once_and_alike() -> None:
    from glmbridge.exchange import Exchange
    from glmbridge.protocols.openai import upstream_request

    upstream_request._TOOLS_JSON.clear()
    first = Exchange.from_request(anthropic.DOOR, anthropic.decode_request(_body()))
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1
    second = Exchange.from_request(anthropic.DOOR, anthropic.decode_request(_body()))
    assert len(upstream_request._TOOLS_JSON["glm"]) == 1  # the same tools: the JSON reused
    assert first.body == second.body
    # the body equals one encoded without the memo
    upstream_request._TOOLS_JSON.clear()
    fresh = [
        anthropic.door_request._decode_tool(msgspec.Raw(json.dumps(t).encode()), i)
        for i, t in enumerate(json.loads(_body())["tools"])
    ]
    request = msgspec.structs.replace(anthropic.decode_request(_body()), tools=fresh)
    assert Exchange.from_request(anthropic.DOOR, request).body == first.body
    changed = json.loads(FIXTURE.read_text())
    changed["tools"][3]["description"] = "changed"
    other = Exchange.from_request(
        anthropic.DOOR, anthropic.decode_request(json.dumps(changed).encode())
    )
    assert b'"description":"changed"' in other.body


def test_the_memo_compares_a_slot_before_it_hashes() -> None:
    memo: RawMemo[str] = RawMemo(max_item=1000, max_total=1010, slots=2)
    memo.put(b"tool-a", "A", 0)
    memo.put(b"tool-b", "B", 1)
    assert memo.get(b"tool-a", 0) == "A"  # the slot's last part
    assert memo.get(b"tool-b", 0) == "B"  # another part there: the dictionary, then the slot
    assert memo.get(b"tool-b", 0) == "B"
    assert memo.get(b"tool-a", 5) == "A"  # no such slot: the dictionary only
    assert memo.get(b"tool-c", 1) is None
    memo.put(b"x" * 1000, "X", 0)  # over max_total: starts over, slots included
    assert (memo.get(b"tool-a", 0), memo.get(b"tool-b", 1), memo.get(b"x" * 1000, 0)) == (
        None,
        None,
        "X",
    )


def test_the_identity_memo_holds_its_objects_and_is_bounded() -> None:
    memo: IdentityMemo[str] = IdentityMemo(max_entries=2)
    a, b = ir.Tool(name="a"), ir.Tool(name="b")
    memo.put([a, b], "ab")
    assert memo.get([a, b]) == "ab"
    assert memo.get([b, a]) is None  # the order counts
    assert memo.get([ir.Tool(name="a"), b]) is None  # an equal object is not the same one
    memo.put([a], "a")
    memo.put([b], "b")  # a third entry: starts over
    assert (memo.get([a, b]), memo.get([b]), len(memo)) == (None, "b", 1)


def test_the_anthropic_upstream_encodes_remembered_tools_once_and_alike() -> None:
    from glmbridge.exchange import Exchange
    from glmbridge.profiles import PROFILES
    from glmbridge.protocols.anthropic import upstream_request

    zai = PROFILES["zai-anthropic"]

    def body_of(req: ir.Request) -> bytes:
        return Exchange.from_request(anthropic.DOOR, req, upstream=zai).body

    upstream_request._TOOLS_JSON.clear()
    first = body_of(anthropic.decode_request(_body()))
    assert len(upstream_request._TOOLS_JSON) == 1
    second = body_of(anthropic.decode_request(_body()))
    assert len(upstream_request._TOOLS_JSON) == 1  # the same tools: the JSON reused
    assert first == second
    # byte for byte what the encoder writes for tool objects it has never seen
    fresh = [
        anthropic.door_request._decode_tool(msgspec.Raw(json.dumps(t).encode()), i)
        for i, t in enumerate(json.loads(_body())["tools"])
    ]
    upstream_request._TOOLS_JSON.clear()
    general = body_of(msgspec.structs.replace(anthropic.decode_request(_body()), tools=fresh))
    assert general == first
    assert json.loads(first)["tools"] == [
        {k: v for k, v in t.items() if k in ("name", "description", "input_schema")}
        for t in json.loads(_body())["tools"]
    ]
    changed = json.loads(FIXTURE.read_text())
    changed["tools"][3]["description"] = "changed"
    other = body_of(anthropic.decode_request(json.dumps(changed).encode()))
    assert json.loads(other)["tools"][3]["description"] == "changed"


def test_the_anthropic_upstream_does_not_remember_server_tools() -> None:
    from glmbridge.exchange import Exchange
    from glmbridge.profiles import PROFILES
    from glmbridge.protocols.anthropic import upstream_request

    upstream_request._TOOLS_JSON.clear()
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    body = _body(tools=[search, *json.loads(FIXTURE.read_text())["tools"][:2]])
    for _ in range(2):
        req = anthropic.decode_request(body)
        sent = Exchange.from_request(anthropic.DOOR, req, upstream=PROFILES["zai-anthropic"])
        assert json.loads(sent.body)["tools"][0] == search
        assert len(upstream_request._TOOLS_JSON) == 0
