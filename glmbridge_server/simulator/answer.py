"""What the simulated model says: a script (or the default answer) cut into wire-ordered pieces.

Shared by both endpoints (:mod:`~.chat` renders the pieces as GLM's chat API,
:mod:`~.anthropic` as Z.ai's Anthropic endpoint). ``max_tokens`` truncation, ``stop`` words,
scripted failures and usage are decided here, once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import msgspec

from glmbridge_server.simulator.catalog import ModelInfo
from glmbridge_server.simulator.rules import _Prompt
from glmbridge_server.simulator.scripts import Context, Script, ScriptToolCall, default_script_for

__all__ = ["Answer", "answer"]


@dataclass(slots=True)
class Answer:
    """One answer, ready to render."""

    reasoning: bool
    pieces: list[tuple[str, Any]]  # (kind, payload) fragments in wire order
    calls: list[tuple[str, str, str]]  # (id, name, arguments) after truncation
    finish: str
    cut: bool
    usage: dict[str, Any]


def _split(text: str, size: int, count: int | None) -> list[str]:
    if count:
        count = min(count, len(text)) or 1
        q, r = divmod(len(text), count)
        bounds = [i * q + min(i, r) for i in range(count + 1)]
        return [text[bounds[i] : bounds[i + 1]] for i in range(count)]
    return [text[i : i + size] for i in range(0, len(text), size)]


def _said(
    script: Script, ctx: Context, body: dict[str, Any], info: ModelInfo
) -> tuple[str, str, list[ScriptToolCall]]:
    """Reasoning, text and calls before any limit: the script's, or the default answer."""
    if script.has_content:
        reasoning, text, calls = script.reasoning or "", script.text or "", script.tool_calls
    else:
        d = default_script_for(ctx)
        chosen = d.reasoning if script.reasoning is None else script.reasoning
        reasoning, text, calls = chosen or "", d.text or "", d.tool_calls
    thinking = (body.get("thinking") or {}).get("type", "enabled")
    if thinking == "disabled" or info.thinking == "none":
        reasoning = ""
    if script.chunk_count and len(text) < script.chunk_count:
        text += "".join(f" {i}" for i in range(script.chunk_count))  # pad so N chunks exist
    stop = body.get("stop")
    for word in [stop] if isinstance(stop, str) else stop or ():
        if word and word in text:
            text, calls = text[: text.index(word)], []
    return reasoning, text, list(calls)


def _truncate(
    max_tokens: int, reasoning: str, text: str, args: list[str]
) -> tuple[str, str, list[str], bool]:
    """Reasoning, then text, then tool arguments consume ``max_tokens`` (4 characters each);
    the arguments of the calls that fit, and whether anything was cut."""
    budget = max_tokens * 4
    truncated = False

    def take(s: str) -> str:
        nonlocal budget, truncated
        truncated = truncated or len(s) > budget
        budget -= len(s)
        return s[: max(budget + len(s), 0)]

    reasoning, text = take(reasoning), take(text)
    kept: list[str] = []
    for a in args:
        if truncated or (budget <= 0 and a):  # generation ended before this call
            truncated = True
            break
        kept.append(take(a))
    return reasoning, text, kept, truncated


def _pieces(
    reasoning: str, text: str, args: list[str], script: Script, tool_stream: bool, filler: str
) -> list[tuple[str, Any]]:
    size = max(1, script.chunk_size)
    pieces: list[tuple[str, Any]] = [("reasoning", f) for f in _split(reasoning, size, None)]
    content = text if text or not args else filler  # GLM sends "\n\n" beside tool calls
    pieces += [("content", f) for f in _split(content, size, script.chunk_count)]
    if args and tool_stream:
        for i, a in enumerate(args):
            pieces.append(("tool_start", i))
            pieces += [("tool_args", (i, f)) for f in _split(a, size, None)]
    elif args:
        # Without tool_stream each call comes whole in its own chunk, which already carries
        # finish_reason "tool_calls" (recorded from api.z.ai/api/coding/paas/v4, glm-4.5:
        # charmbracelet/fantasy zai-glm-4.5/multi_tool_streaming.yaml; zai-fidelity 3.5).
        pieces += [("tool_whole", i) for i in range(len(args))]
    return pieces


def _scripted_end(
    pieces: list[tuple[str, Any]], script: Script, finish: str
) -> tuple[list[tuple[str, Any]], str, bool]:
    """A scripted failure (a finish reason mid-stream) or cut (the connection drops)."""
    limit = script.fail_after_chunks
    if limit is not None and limit < len(pieces):
        pieces = pieces[:limit]
        if script.finish_reason in (None, "stop", "tool_calls"):
            finish = "network_error"
    cut = script.cut_after_chunks is not None and script.cut_after_chunks < len(pieces)
    if cut:
        pieces = pieces[: script.cut_after_chunks]
    return pieces, finish, cut


def _sent_calls(
    pieces: list[tuple[str, Any]], ids: list[str], names: list[str], args: list[str]
) -> list[tuple[str, str, str]]:
    """The calls that made it onto the wire (a failure may stop before or inside one)."""
    n_calls = len({p[1] for p in pieces if p[0] in ("tool_start", "tool_whole")})
    out_args = [""] * n_calls
    for kind, payload in pieces:
        if kind == "tool_args":
            out_args[payload[0]] += payload[1]
        elif kind == "tool_whole":
            out_args[payload] = args[payload]
    return [(ids[i], names[i], out_args[i]) for i in range(n_calls)]


def _usage(completion: int, script: Script, prompt: _Prompt) -> dict[str, Any]:
    prompt_total = prompt.tokens + prompt.image + prompt.video
    p_tok = script.prompt_tokens if script.prompt_tokens is not None else prompt_total
    c_tok = script.completion_tokens if script.completion_tokens is not None else completion
    cached = script.cached_tokens if script.cached_tokens is not None else prompt.cached
    return {
        "prompt_tokens": p_tok,
        "completion_tokens": c_tok,
        "total_tokens": p_tok + c_tok,
        "prompt_tokens_details": {"cached_tokens": min(cached, p_tok)},
    }


def answer(
    script: Script,
    ctx: Context,
    body: dict[str, Any],
    info: ModelInfo,
    prompt: _Prompt,
    *,
    streaming: bool,
    filler: str = "\n\n",
) -> Answer:
    """The answer ``script`` gives to the chat-shaped ``body``."""
    reasoning, text, calls = _said(script, ctx, body, info)
    args = [
        c.arguments if isinstance(c.arguments, str) else msgspec.json.encode(c.arguments).decode()
        for c in calls
    ]
    ids = [c.id or "call_" + os.urandom(12).hex() for c in calls]
    truncated = False
    if body.get("max_tokens"):
        reasoning, text, args, truncated = _truncate(body["max_tokens"], reasoning, text, args)
        calls = calls[: len(args)]
    tool_stream = streaming and bool(body.get("tool_stream"))
    pieces = _pieces(reasoning, text, args, script, tool_stream, filler)
    finish = "length" if truncated else script.finish_reason or ("tool_calls" if calls else "stop")
    pieces, finish, cut = _scripted_end(pieces, script, finish)
    out_calls = _sent_calls(pieces, ids, [c.name for c in calls], args)
    chars = sum(len(p[1]) for p in pieces if p[0] in ("reasoning", "content"))
    chars += sum(len(a) + len(n) for _, n, a in out_calls)
    completion = body["max_tokens"] if truncated else max(1, math.ceil(chars / 4))
    return Answer(
        bool(reasoning), pieces, out_calls, finish, cut, _usage(completion, script, prompt)
    )
