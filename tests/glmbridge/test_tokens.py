"""Local token estimates: calibrated ranges, monotone, non-constant, everything counted."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge import ir
from glmbridge.tokens import IMAGE_TOKENS, estimate_request_tokens, estimate_text_tokens

PROSE = (
    "The quick brown fox jumps over the lazy dog. Tokenizers split words, digits and "
    "punctuation in predictable ways, and this estimate follows them closely enough. "
)
# How close each text and each recorded request comes to GLM's real count:
# test_token_truth.py. These tests pin the estimate's shape.


def test_known_small_strings() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("hello") == 1  # GLM: 1
    assert estimate_text_tokens("hello world") == 2  # GLM: 2
    assert estimate_text_tokens("   ") == 1  # a whitespace run is one piece


def test_cjk_costs_more_per_character_than_ascii() -> None:
    n = 300
    ascii_tokens = estimate_text_tokens(("word " * n)[:n])
    cjk_tokens = estimate_text_tokens(("中文字符" * n)[:n])
    assert cjk_tokens > 3 * ascii_tokens


def test_non_ascii_letters_counted() -> None:
    assert estimate_text_tokens("naïve café") >= estimate_text_tokens("naive cafe")
    assert estimate_text_tokens("תצורת השרת") > estimate_text_tokens("tsurat hasharat")
    assert estimate_text_tokens("🎉") >= 1


@settings(max_examples=300)
@given(st.text(max_size=200), st.text(max_size=200))
def test_text_estimate_is_monotone_under_appending(a: str, b: str) -> None:
    assert estimate_text_tokens(a + b) >= estimate_text_tokens(a)
    if b.strip():
        assert estimate_text_tokens(a + " " + b) > estimate_text_tokens(a)


def test_not_constant() -> None:
    values = {estimate_text_tokens(PROSE * k) for k in range(1, 6)}
    assert len(values) == 5


def msg(*blocks: ir.Block, role: str = "user") -> ir.Message:
    return ir.Message(role=role, content=list(blocks))  # type: ignore[arg-type]


def request(*messages: ir.Message, **kw: object) -> ir.Request:
    return ir.Request(model="claude-sonnet-4-5", messages=list(messages), **kw)  # type: ignore[arg-type]


BASE = request(msg(ir.TextBlock(text="hello")))
TOOL = ir.Tool(
    name="get_weather",
    description="Get the weather for a city.",
    input_schema=msgspec.Raw(b'{"type":"object","properties":{"city":{"type":"string"}}}'),
)
IMAGE = ir.ImageBlock(source=ir.MediaSource(type="base64", media_type="image/png", data="iVBOR"))


@pytest.mark.parametrize(
    "bigger",
    [
        request(msg(ir.TextBlock(text="hello there, friend"))),
        request(msg(ir.TextBlock(text="hello")), system=[ir.TextBlock(text="Be brief.")]),
        request(msg(ir.TextBlock(text="hello")), tools=[TOOL]),
        request(msg(ir.TextBlock(text="hello")), msg(ir.TextBlock(text="hi"), role="assistant")),
        request(msg(ir.TextBlock(text="hello"), IMAGE)),
        request(
            msg(ir.TextBlock(text="hello"), ir.ToolResultBlock(tool_use_id="t", content=[IMAGE]))
        ),
        request(
            msg(
                ir.TextBlock(text="hello"), ir.ThinkingBlock(thinking="Let me think", signature="s")
            )
        ),
        request(
            msg(ir.TextBlock(text="hello")),
            msg(
                ir.ToolUseBlock(id="t", name="get_weather", input={"city": "Paris"}),
                role="assistant",
            ),
        ),
        request(
            msg(
                ir.TextBlock(text="hello"),
                ir.DocumentBlock(source=ir.MediaSource(type="text", data="Report text")),
            ),
        ),
        request(
            msg(
                ir.TextBlock(text="hello"),
                ir.DocumentBlock(
                    source=ir.MediaSource(
                        type="base64", media_type="application/pdf", data="A" * 4000
                    )
                ),
            )
        ),
        request(
            msg(ir.TextBlock(text="hello"), ir.UnknownBlock(original_type="x", raw={"k": "value"}))
        ),
    ],
)
def test_every_part_of_a_request_is_counted(bigger: ir.Request) -> None:
    assert estimate_request_tokens(bigger) > estimate_request_tokens(BASE)


def test_image_costs_a_fixed_amount() -> None:
    with_image = request(msg(ir.TextBlock(text="hello"), IMAGE))
    delta = estimate_request_tokens(with_image) - estimate_request_tokens(BASE)
    assert IMAGE_TOKENS <= delta <= IMAGE_TOKENS + 2


def test_tools_counted_by_schema_size_raw_or_dict() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(50)}}
    raw_tool = ir.Tool(name="t", input_schema=msgspec.Raw(msgspec.json.encode(schema)))
    dict_tool = ir.Tool(name="t", input_schema=schema)
    small = ir.Tool(name="t", input_schema={"type": "object"})
    raw_n = estimate_request_tokens(request(msg(ir.TextBlock(text="x")), tools=[raw_tool]))
    dict_n = estimate_request_tokens(request(msg(ir.TextBlock(text="x")), tools=[dict_tool]))
    small_n = estimate_request_tokens(request(msg(ir.TextBlock(text="x")), tools=[small]))
    assert raw_n == dict_n > small_n + 200


def test_server_tools_counted() -> None:
    server = ir.Tool(name="web_search", server_type="web_search_20250305", config={"max_uses": 5})
    plain = ir.Tool(name="web_search")
    with_server = estimate_request_tokens(request(msg(ir.TextBlock(text="x")), tools=[server]))
    assert with_server > estimate_request_tokens(
        request(msg(ir.TextBlock(text="x")), tools=[plain])
    )


@settings(max_examples=100)
@given(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=8))
def test_request_estimate_grows_with_each_message(texts: list[str]) -> None:
    previous = -1
    for n in range(1, len(texts) + 1):
        value = estimate_request_tokens(request(*(msg(ir.TextBlock(text=t)) for t in texts[:n])))
        assert value > previous
        previous = value


def test_token_estimator_memo_gives_identical_results_and_stays_bounded() -> None:
    """A memoising estimator returns exactly the stateless estimate, within its size bound."""
    import json as _json
    from pathlib import Path

    from glmbridge.protocols import anthropic
    from glmbridge.tokens import TokenEstimator, estimate_request_tokens

    fixtures = Path(__file__).parent.parent / "fixtures" / "claude_code"
    estimator = TokenEstimator(max_cached_chars=200_000)
    for path in sorted(fixtures.glob("request_*.json")):
        body = _json.dumps(_json.loads(path.read_text())).encode()
        req = anthropic.decode_request(body)
        expected = estimate_request_tokens(req)
        assert estimator.request_tokens(req) == expected  # cold
        assert estimator.request_tokens(req) == expected  # warm
        assert estimator._memo_chars <= 200_000
