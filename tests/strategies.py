"""Hypothesis strategies: GLM upstream streams (wire-specs A.9), JSON values, IR requests.

A generated :class:`GlmStream` is a list of chunk dicts as GLM sends them: ``role``
repeated in every delta, an optional leading ``"\\n"`` content/reasoning delta,
reasoning fragments then content fragments, then tool calls, either

* whole, one chunk per call or all calls in one chunk (no ``tool_stream``), the
  finish_reason on that chunk and repeated on the final usage chunk, or
* ``tool_stream`` fragments per index (id/name on the first fragment or arriving
  later), parallel calls with interleaved indices,

with unicode everywhere, a finish_reason from A.10 or none at all (cut off), usage
only in the last chunk or absent, and ``[DONE]`` present or absent. With
``interleave=True`` text and reasoning may also arrive between and after tool calls.

:func:`to_sse` frames the chunks as raw SSE bytes, :func:`non_stream_body` builds the
equivalent non-stream GLM response (A.8) from the same chunks.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import strategies as st

import glmbridge
from glmbridge import ir

__all__ = [
    "ABNORMAL_FINISHES",
    "FINISH_REASONS",
    "GlmStream",
    "SseFraming",
    "glm_streams",
    "ir_requests",
    "json_values",
    "non_stream_body",
    "sse_events",
    "sse_framings",
    "to_sse",
]

MODEL = "glm-4.7"
FINISH_REASONS = (
    "stop",
    "length",
    "tool_calls",
    "sensitive",
    "network_error",
    "model_context_window_exceeded",
)
ABNORMAL_FINISHES = (None, "network_error")  # the stream ends with an error, not a message

# --- text ------------------------------------------------------------------------------

# Surrogate-free unicode, biased towards what trips codecs: emoji (4-byte UTF-8 and
# ZWJ sequences), CJK, combining marks, JSON escapes, whitespace and line breaks.
_SPECIAL = list(
    '你好世界中文測試日本語한국어😀🎉👍🏽‍🔥é\u0301\n\r\t "\\/{}[]:,\u2028\u2029\x00\x7f'
)
_CHARS = st.one_of(
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
    st.sampled_from(_SPECIAL),
)
# A list of characters, not st.text(_CHARS): st.text folds the alphabet into one set of
# code points and almost never draws the specials (1 example in ~500).
texts = st.lists(_CHARS, max_size=16).map("".join)
fragments = st.lists(texts, max_size=4)

# Tool arguments: JSON objects (no NaN/inf: GLM sends valid JSON).
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
_arg_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
tool_args = st.dictionaries(texts, _arg_values, max_size=4)
_TOOL_NAMES = ["Bash", "Read", "Edit", "Write", "WebFetch", "mcp__github__create_issue", "工具"]
_TOOL_IDS = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(lambda n: f"call_{n}"),
    st.text("0123456789abcdef", min_size=24, max_size=24).map(lambda h: f"call_{h}"),
    st.integers(0, 9).map(lambda n: f"functions.Bash:{n}"),  # sanitised, deterministically
)


# --- GLM streams ---------------------------------------------------------------------


@dataclass
class GlmStream:
    """A generated upstream stream and how it was made."""

    chunks: list[dict[str, Any]]
    done: bool  # ends with data: [DONE]
    finish: str | None  # None: cut off (no finish_reason at all)
    usage: dict[str, Any] | None
    tool_stream: bool
    canonical: bool  # reasoning, then content, then tool calls (what GLM really sends)
    tool_ids: list[str] = field(default_factory=list)

    @property
    def completes(self) -> bool:
        """Whether the stream ends with a message (not an error event)."""
        return self.finish not in ABNORMAL_FINISHES


def _delta(**fields: Any) -> dict[str, Any]:
    return {"role": "assistant", **fields}


def _split(draw: st.DrawFn, text: str, max_pieces: int = 4) -> list[str]:
    """Split ``text`` at arbitrary character offsets (inside escapes too)."""
    if not text:
        return [""]
    cuts = draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=max_pieces - 1))
    points = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def _interleave(draw: st.DrawFn, queues: list[list[Any]]) -> list[Any]:
    """Merge queues in a drawn order, keeping each queue's own order."""
    queues = [list(q) for q in queues if q]
    out: list[Any] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        out.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return out


@st.composite
def glm_streams(draw: st.DrawFn, *, interleave: bool | None = None) -> GlmStream:
    """GLM chat-completion streams as lists of chunk dicts (wire-specs A.9)."""
    interleaved = draw(st.booleans()) if interleave is None else interleave
    finish = draw(st.sampled_from((*FINISH_REASONS, None)))
    tool_stream = draw(st.booleans())
    deltas: list[dict[str, Any]] = []  # the delta of each chunk, in order
    lead = draw(st.sampled_from(["none", "content", "reasoning"]))
    if lead == "content":
        deltas.append(_delta(content="\n"))
    elif lead == "reasoning":
        deltas.append(_delta(content="", reasoning_content="\n"))
    reasoning = [_delta(reasoning_content=t) for t in draw(fragments)]
    content = [_delta(content=t) for t in draw(fragments)]

    # Tool calls: distinct ids, arguments possibly truncated by finish_reason "length".
    n_tools = draw(st.integers(0, 3))
    ids = draw(st.lists(_TOOL_IDS, min_size=n_tools, max_size=n_tools, unique=True))
    calls: list[tuple[str, str, str]] = []
    for i, call_id in enumerate(ids):
        args = json.dumps(draw(tool_args), ensure_ascii=draw(st.booleans()))
        if finish == "length" and i == n_tools - 1 and draw(st.booleans()):
            args = args[: draw(st.integers(0, len(args)))]
        calls.append((call_id, draw(st.sampled_from(_TOOL_NAMES)), args))

    tool_deltas: list[dict[str, Any]] = []
    finish_carrier: dict[str, Any] | None = None  # whole mode: the finish is on this chunk too
    early_finish: list[dict[str, Any]] = []  # per-call chunks that carry the finish too
    if calls and not tool_stream:
        entries = [
            {"id": cid, "index": i, "type": "function", "function": {"name": name, "arguments": a}}
            for i, (cid, name, a) in enumerate(calls)
        ]
        if draw(st.booleans()):  # all parallel calls in one chunk (GLM's usual form)
            tool_deltas.append(_delta(content="", tool_calls=entries))
        else:
            tool_deltas += [_delta(tool_calls=[e]) for e in entries]
            if draw(st.booleans()):
                # The Coding Plan puts the finish on *every* per-call chunk (zai-fidelity
                # 3.5, recorded W45); GLM-4.6V only on the final chunk (W46V).
                early_finish = tool_deltas[:-1]
        finish_carrier = tool_deltas[-1]
    elif calls:
        per_tool: list[list[dict[str, Any]]] = []
        for i, (cid, name, a) in enumerate(calls):
            pieces = _split(draw, a)
            named_at = draw(st.integers(0, len(pieces) - 1))  # id/name may arrive late
            frags = []
            for j, piece in enumerate(pieces):
                call: dict[str, Any] = {"index": i, "function": {"arguments": piece}}
                if j == named_at:
                    call.update(id=cid, type="function")
                    call["function"]["name"] = name
                frags.append(_delta(tool_calls=[call]))
            per_tool.append(frags)
        if interleaved:
            tool_deltas = _interleave(draw, per_tool)
        else:
            # Interleaved indices, but call k+1 starts after call k started (GLM's index
            # order), so the blocks come out in index order as in the non-stream answer.
            tool_deltas = _merge_in_start_order(draw, per_tool)

    if interleaved:
        body = _interleave(draw, [reasoning, content, tool_deltas])
        extra = [_delta(content=t) for t in draw(fragments)]  # text after the last call
        extra += [_delta(reasoning_content=t) for t in draw(st.lists(texts, max_size=2))]
        body += extra
    else:
        body = reasoning + content + tool_deltas
    deltas += body

    chunk_id = draw(st.text("0123456789abcdef", min_size=8, max_size=8))
    null_finish = draw(st.booleans())  # finish_reason: null vs absent on normal chunks

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if finish_reason is not None or null_finish:
            choice["finish_reason"] = finish_reason
        return {"id": chunk_id, "created": 1758884743, "model": MODEL, "choices": [choice]}

    # Without tool_stream, GLM already puts finish_reason on the (last) tool-call chunk
    # and repeats it on the final usage chunk (A.9).
    carrier = finish_carrier if deltas and deltas[-1] is finish_carrier else None
    carriers = [carrier, *early_finish] if carrier is not None else []
    chunks = [
        chunk(
            d, finish if any(d is c for c in carriers) and finish not in ABNORMAL_FINISHES else None
        )  # fmt: skip
        for d in deltas
    ]

    usage: dict[str, Any] | None = None
    if finish is None:
        if chunks and draw(st.booleans()):  # the connection may drop anywhere
            chunks = chunks[: draw(st.integers(0, len(chunks)))]
    else:
        if draw(st.booleans()):
            prompt = draw(st.integers(0, 200_000))
            completion = draw(st.integers(0, 100_000))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            if draw(st.booleans()):
                usage["prompt_tokens_details"] = {"cached_tokens": draw(st.integers(0, prompt))}
        last = chunk(_delta(content=""), finish)
        if usage is not None:
            last["usage"] = usage
        chunks.append(last)
    return GlmStream(
        chunks=chunks,
        done=draw(st.booleans()),
        finish=finish,
        usage=usage,
        tool_stream=tool_stream,
        canonical=not interleaved,
        tool_ids=ids,
    )


def _merge_in_start_order(draw: st.DrawFn, per_tool: list[list[Any]]) -> list[Any]:
    """Interleave per-index fragments so that call k+1 starts only after call k started."""
    out: list[Any] = []
    active: list[list[Any]] = []
    pending = [list(q) for q in per_tool]
    while pending or active:
        # Either start the next call or continue an already started one.
        if pending and (not active or draw(st.booleans())):
            q = pending.pop(0)
            out.append(q.pop(0))
            if q:
                active.append(q)
        else:
            i = draw(st.integers(0, len(active) - 1))
            out.append(active[i].pop(0))
            if not active[i]:
                active.pop(i)
    return out


# --- SSE framing and the non-stream equivalent -----------------------------------------


@dataclass(frozen=True)
class SseFraming:
    """How a stream is written: line ending, ``data:`` spacing, JSON escaping.

    ``multiline`` pretty-prints each JSON chunk over several ``data:`` lines (legal SSE:
    a decoder joins them with ``"\\n"``), which makes line-ending handling observable.
    """

    eol: str = "\n"
    space: bool = True
    ensure_ascii: bool = False
    multiline: bool = False


sse_framings = st.builds(
    SseFraming,
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    space=st.booleans(),
    ensure_ascii=st.booleans(),
    multiline=st.booleans(),
)


def sse_events(stream: GlmStream, framing: SseFraming = SseFraming()) -> list[bytes]:
    """The upstream SSE bytes, one item per event (one network read per event)."""
    prefix = "data: " if framing.space else "data:"
    indent = 1 if framing.multiline else None
    payloads = [
        json.dumps(c, ensure_ascii=framing.ensure_ascii, indent=indent) for c in stream.chunks
    ]
    if stream.done:
        payloads.append("[DONE]")
    return [
        ("".join(prefix + line + framing.eol for line in p.split("\n")) + framing.eol).encode()
        for p in payloads
    ]


def to_sse(stream: GlmStream, framing: SseFraming = SseFraming()) -> bytes:
    """Frame the chunks as raw upstream SSE (``data: <json>`` + blank line each)."""
    return b"".join(sse_events(stream, framing))


def non_stream_body(stream: GlmStream) -> bytes:
    """The non-stream GLM response (A.8) with the same content as ``stream``.

    Reasoning and content are the concatenations of their fragments, tool calls carry
    their full argument strings in index order; finish_reason and usage as streamed.
    """
    reasoning, content = "", ""
    tools: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    for c in stream.chunks:
        for choice in c.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = tools.setdefault(call["index"], {"index": call["index"], "function": {}})
                if call.get("id"):
                    slot.setdefault("id", call["id"])
                    slot["type"] = "function"
                fn = call.get("function") or {}
                if fn.get("name"):
                    slot["function"].setdefault("name", fn["name"])
                args = slot["function"].get("arguments", "") + (fn.get("arguments") or "")
                slot["function"]["arguments"] = args
            finish = finish or choice.get("finish_reason")
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tools:
        message["tool_calls"] = [tools[k] for k in sorted(tools)]
    body: dict[str, Any] = {
        "id": "20250926190543de74b873b8e04ebc",
        "request_id": "20250926190543de74b873b8e04ebc",
        "created": 1758884743,
        "model": MODEL,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
    }
    if stream.usage is not None:
        body["usage"] = stream.usage
    return json.dumps(body, ensure_ascii=False).encode()


# --- arbitrary JSON ----------------------------------------------------------------------

# Keys the decoders look at, so random values land in interesting places.
_KEYS = st.one_of(
    st.sampled_from(
        [
            "choices", "delta", "message", "content", "reasoning_content", "tool_calls",
            "index", "id", "type", "function", "name", "arguments", "finish_reason", "usage",
            "prompt_tokens", "completion_tokens", "prompt_tokens_details", "cached_tokens",
            "error", "code", "msg", "role", "model", "messages", "max_tokens", "system",
            "tools", "input_schema", "tool_use_id", "source", "data", "text", "thinking",
        ]
    ),
    st.text(max_size=6),
)  # fmt: skip
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # includes values beyond 64 bits
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)


# --- IR requests that Anthropic can express ---------------------------------------------

_cache = st.one_of(
    st.none(),
    st.builds(ir.CacheControl, ttl=st.sampled_from([None, "5m", "1h"])),
)
_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12).map(
    lambda s: "toolu_" + s
)
_text_blocks = st.builds(
    ir.TextBlock,
    text=texts,
    cache_control=_cache,
    citations=st.one_of(
        st.none(),
        st.lists(
            st.fixed_dictionaries({"type": st.just("char_location"), "cited_text": texts}),
            min_size=1,
            max_size=2,
        ),
    ),
)
_media = st.one_of(
    st.builds(
        ir.MediaSource,
        type=st.just("base64"),
        media_type=st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        # Canonical base64 (standard alphabet, padded): what every door hands the IR.
        data=st.binary(max_size=18).map(lambda b: base64.b64encode(b).decode()),
    ),
    st.builds(ir.MediaSource, type=st.just("url"), url=st.just("https://example.com/a.png")),
    st.builds(ir.MediaSource, type=st.just("file"), file_id=st.just("file_011abc")),
)
_image_blocks = st.builds(ir.ImageBlock, source=_media, cache_control=_cache)
_documents = st.builds(
    ir.DocumentBlock,
    source=st.builds(
        ir.MediaSource, type=st.just("text"), media_type=st.just("text/plain"), data=texts
    ),
    title=st.none() | texts,
    context=st.none() | texts,
    cache_control=_cache,
)
_tool_result_content = st.lists(st.one_of(_text_blocks, _image_blocks, _documents), max_size=3)
_tool_results = st.builds(
    ir.ToolResultBlock,
    tool_use_id=_ids,
    content=_tool_result_content,
    is_error=st.booleans(),
    cache_control=_cache,
)
_tool_uses = st.builds(
    ir.ToolUseBlock,
    id=_ids,
    name=st.sampled_from(_TOOL_NAMES),
    input=tool_args,
    cache_control=_cache,
)
_thinking_blocks = st.builds(
    ir.ThinkingBlock, thinking=texts, signature=st.text("abcdefABCDEF0123456789.", min_size=1)
)
_redacted = st.builds(ir.RedactedThinkingBlock, data=st.text("abcdef0123456789", min_size=1))
_user_blocks = st.one_of(_text_blocks, _image_blocks, _documents, _tool_results)
_assistant_blocks = st.one_of(_text_blocks, _thinking_blocks, _redacted, _tool_uses)
_messages = st.one_of(
    st.builds(ir.Message, role=st.just("user"), content=st.lists(_user_blocks, max_size=4)),
    st.builds(
        ir.Message, role=st.just("assistant"), content=st.lists(_assistant_blocks, max_size=4)
    ),
    st.builds(ir.Message, role=st.just("system"), content=st.lists(_text_blocks, max_size=2)),
)
_schemas = st.one_of(
    st.just({"type": "object"}),
    st.dictionaries(
        texts, st.sampled_from([{"type": "string"}, {"type": "integer"}]), max_size=3
    ).map(lambda props: {"type": "object", "properties": props}),
).map(lambda s: msgspec.Raw(msgspec.json.encode(s)))  # decoded schemas stay raw bytes
_tools = st.builds(
    ir.Tool,
    name=st.sampled_from(_TOOL_NAMES),
    description=st.none() | texts,
    input_schema=_schemas,
    cache_control=_cache,
)
_tool_choices = st.one_of(
    st.none(),
    st.builds(
        ir.ToolChoice,
        type=st.sampled_from(["auto", "any"]),
        disable_parallel_tool_use=st.booleans(),
    ),
    st.builds(
        ir.ToolChoice,
        type=st.just("tool"),
        name=st.sampled_from(_TOOL_NAMES),
        disable_parallel_tool_use=st.booleans(),
    ),
    st.just(ir.ToolChoice(type="none")),
)
_thinking_configs = st.one_of(
    st.none(),
    st.builds(ir.Thinking, type=st.just("enabled"), budget_tokens=st.integers(1024, 64000)),
    st.builds(ir.Thinking, type=st.just("disabled")),
    st.builds(ir.Thinking, type=st.just("adaptive"), display=st.sampled_from([None, "summarized"])),
)
_response_formats = st.one_of(
    st.none(),
    st.builds(
        ir.ResponseFormat,
        type=st.just("json_schema"),
        schema=st.just({"type": "object", "properties": {"title": {"type": "string"}}}),
    ),
)

ir_requests = st.builds(
    ir.Request,
    model=st.sampled_from(["claude-opus-4-8", "claude-sonnet-4-5", "glm-4.6"]),
    messages=st.lists(_messages, max_size=4),
    system=st.lists(_text_blocks, max_size=3),
    max_tokens=st.integers(1, 128_000),
    temperature=st.none() | st.floats(0, 1),
    top_p=st.none() | st.floats(0, 1),
    top_k=st.none() | st.integers(1, 500),
    stop_sequences=st.lists(texts.filter(bool), max_size=2),
    stream=st.booleans(),
    tools=st.lists(_tools, max_size=3),
    tool_choice=_tool_choices,
    thinking=_thinking_configs,
    effort=st.sampled_from([None, "low", "medium", "high"]),
    response_format=_response_formats,
    user_id=st.none() | texts,
)
"""IR requests the Anthropic wire can express losslessly (see the round-trip test)."""


def glm_to_anthropic(**kw: Any) -> glmbridge.ExchangeStream:
    """The stream machine from GLM's chat API to an Anthropic client."""
    from glmbridge.protocols import anthropic, openai

    return glmbridge.ExchangeStream.between(anthropic.DOOR, openai.ChatUpstream(), **kw)
