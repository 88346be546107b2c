"""The simulated chat API's rules: what it rejects (with GLM's business codes) and how it
counts a prompt, its media and its cached prefix. Shared by both endpoints of the simulator
(:mod:`~.chat`, :mod:`~.anthropic`); independent of ``glmbridge``.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from glmbridge_server.simulator.catalog import (
    ALWAYS_THINKS_EN,
    CODING_PLAN_MODELS,
    MODELS,
    NOT_ON_PLAN,
    TIER_GATED,
    ModelInfo,
)
from glmbridge_server.simulator.images import image_bytes, is_corrupt, not_base64
from glmbridge_server.simulator.prompt_tokens import request_tokens
from glmbridge_server.simulator.scripts import error_for_code

_MAX_TOKENS_LIMIT = 131072
_IMAGE_TOKENS, _VIDEO_TOKENS = 1024, 4096
_CACHE_ENTRIES = 4096
_encode = msgspec.json.encode


class _GlmError(Exception):
    """A GLM error response (HTTP status + string business code)."""

    def __init__(self, code: str, field_name: str = "request", message: str | None = None):
        err = error_for_code(code, field_name)
        super().__init__(message or err.message)
        self.status, self.code, self.message = err.status, code, message or err.message
        self.text = message  # the explicit text, None for the code's own


# Coding endpoint answers for models it does not serve (see CODING_PLAN_MODELS).
_NO_MODEL_CODE = "modelCode: does not exist"


def _model(
    body: dict[str, Any], *, coding: bool = False, plan: Any = None
) -> tuple[str, ModelInfo]:
    """The model that answers; ``coding``: the Coding Plan endpoint, which serves its plan's
    models only (1214 for an unknown model, 429/1113 for one outside the plan, 403 for a
    tier-gated one), and answers legacy ids with another model. ``plan``: the app state
    (``served_as``, ``gated_keys``) and the request's key, as ``(state, key)``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _GlmError("1213", "model")
    name = model.lower()  # GLM accepts upper-case ids and echoes lowercase
    if coding and name not in CODING_PLAN_MODELS:
        if name in MODELS:  # zai-org/feedback#789 (2026-09-22): outside the plan -> 429/1113
            raise _GlmError("1113")
        raise _GlmError("1214", message=_NO_MODEL_CODE)  # duolahypercho/codex-router#244
    if name not in MODELS:
        raise _GlmError("1211")
    if coding and plan is not None:
        name = served_on_plan(name, *plan)
    return name, MODELS[name]


def served_on_plan(name: str, state: Any, key: str) -> str:
    """The model that answers ``name`` on the Coding Plan (``state.served_as``); a
    tier-gated one for a key without the tier (not in ``state.gated_keys``) is a 403."""
    if name in TIER_GATED and key not in state.gated_keys:
        raise _GlmError("403", message=NOT_ON_PLAN.format(model=name))
    served: str = state.served_as.get(name, name)
    return served if served in MODELS else name


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_parts(parts: list[Any], where: str, info: ModelInfo) -> None:
    kinds = set()
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if not part["text"].strip():  # "messages[4].content[1].text:不能为空" (zed#38153)
                raise _GlmError("1214", message=f"{where}.content[{j}].text:不能为空")
            continue
        if kind not in ("image_url", "video_url", "file_url", "file") or not isinstance(
            part.get(kind), dict
        ):
            raise _GlmError("1214", f"{where}.content[{j}]")
        if not info.vision:  # text models take no media parts
            raise _GlmError("1214", f"{where}.content[{j}].type")
        if kind == "image_url" and not_base64(part):  # URL-safe or unpadded (images.py)
            raise _GlmError("1210")
        data = image_bytes(part) if kind == "image_url" else None
        if data is not None and is_corrupt(data):  # an image GLM cannot decode (_sim_images)
            raise _GlmError("1210")
        if kind == "file":
            _check_file(part["file"], f"{where}.content[{j}].file")
        kinds.add("file" if kind == "file_url" else kind)
    if "file" in kinds and len(kinds) > 1:
        raise _GlmError("1214", f"{where}.content")  # files cannot mix with image/video


def _check_file(ref: dict[str, Any], where: str) -> None:
    """The unified file part (OAS): exactly one of file_id / file_url / file_data, and
    file_data is a ``data:<MIME>;base64,`` URL."""
    given = [k for k in ("file_id", "file_url", "file_data") if k in ref]
    if len(given) != 1 or not isinstance(ref[given[0]], str) or not ref[given[0]]:
        raise _GlmError("1214", where)
    if given[0] == "file_data" and not (
        ref["file_data"].startswith("data:") and ";base64," in ref["file_data"]
    ):
        raise _GlmError("1214", f"{where}.file_data")


def _validate(body: dict[str, Any], info: ModelInfo) -> None:
    """Reject what GLM rejects (400 + 1213/1214); undocumented extra fields are ignored."""
    _check_messages(body.get("messages"), info)
    _check_options(body, info)
    _check_thinking(body, info)
    _check_tools(body)


def _check_messages(msgs: Any, info: ModelInfo) -> None:
    if not isinstance(msgs, list) or not msgs:
        raise _GlmError("1213", "messages")
    roles = {_check_message(m, f"messages[{i}]", info) for i, m in enumerate(msgs)}
    if roles <= {"system"} or roles <= {"assistant"}:
        raise _GlmError("1214", "messages")


def _check_message(m: Any, where: str, info: ModelInfo) -> str:
    """One message's checks; its role."""
    role = m.get("role") if isinstance(m, dict) else None
    if role not in ("system", "user", "assistant", "tool"):
        raise _GlmError("1214", f"{where}.role")
    content = m.get("content")
    if isinstance(content, str) and not content.strip() and role != "assistant":
        # GLM-5: 400/1213 "未正常接收到prompt参数" for content "" (user or tool),
        # curl-verified (earendil-works/pi#3309, #3311; zai-fidelity 2.16).
        raise _GlmError("1213", message="未正常接收到prompt参数")
    if role == "tool":
        if not isinstance(content, str) or not isinstance(m.get("tool_call_id"), str):
            raise _GlmError("1214", where)
    elif role == "assistant":
        if content is not None and not isinstance(content, str):
            raise _GlmError("1214", f"{where}.content")
        calls = m.get("tool_calls")
        if calls is not None and (
            not isinstance(calls, list)
            or not all(
                isinstance(c, dict)
                and isinstance(c.get("function"), dict)
                and isinstance(c["function"].get("name"), str)
                for c in calls
            )
        ):
            raise _GlmError("1214", f"{where}.tool_calls")
        if content is None and not calls:
            raise _GlmError("1214", f"{where}.content")
    elif isinstance(content, list):
        _check_parts(content, where, info)
    elif not isinstance(content, str):
        raise _GlmError("1214", f"{where}.content")
    return str(role)


def _check_options(body: dict[str, Any], info: ModelInfo) -> None:
    """``stop``, ``tool_choice``, ``max_tokens`` and the sampling knobs."""
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and (
            # OAS: maxItems 4 (the description still says one word; zai-fidelity 2.6)
            not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop)
        )
    ):
        raise _GlmError("1214", "stop")
    # Conservative: docs say only "auto" is supported (wire-specs G.1 is still open).
    if "tool_choice" in body and body["tool_choice"] != "auto":
        raise _GlmError("1214", "tool_choice")
    mt = body.get("max_tokens")
    if mt is not None and (
        not isinstance(mt, int)
        or isinstance(mt, bool)
        or mt < 1
        or mt > min(info.max_output, _MAX_TOKENS_LIMIT)
    ):
        raise _GlmError("1214", "max_tokens")
    for name, lo in (("temperature", 0.0), ("top_p", 0.01)):
        v = body.get(name)
        if v is not None and (not _is_num(v) or not lo <= v <= 1.0):
            raise _GlmError("1214", name)


def _check_thinking(body: dict[str, Any], info: ModelInfo) -> None:
    thinking = body.get("thinking")
    if thinking is not None and (
        not isinstance(thinking, dict)
        or thinking.get("type", "enabled") not in ("enabled", "disabled")
    ):
        raise _GlmError("1214", "thinking")
    if (
        info.thinking == "always"
        and isinstance(thinking, dict)
        and thinking.get("type") == "disabled"
    ):
        # glm-5.3 cannot stop thinking: the PAYG OpenAI-style endpoint answers 400/1210 with
        # this text (theopenco/llmgateway#3605, NousResearch/hermes-agent#85890).
        raise _GlmError("1210", message=ALWAYS_THINKS_EN)
    effort = body.get("reasoning_effort")
    if effort is not None and info.efforts and effort not in info.efforts:
        # GLM-5.3 accepts only max/high/low, "anything else errors" (OAS, THINK53).
        raise _GlmError("1214", "reasoning_effort")


def _check_tools(body: dict[str, Any]) -> None:
    """``response_format`` and ``tools``."""
    rf = body.get("response_format")
    if rf is not None and (
        not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object")
    ):
        raise _GlmError("1214", "response_format")
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list) or len(tools) > 128:
        raise _GlmError("1214", "tools")
    for i, t in enumerate(tools):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind not in ("function", "retrieval", "web_search") or not isinstance(t.get(kind), dict):
            raise _GlmError("1214", f"tools[{i}]")
        name = t[kind].get("name") if kind == "function" else "x"
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= 64
            or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
        ):
            raise _GlmError("1214", f"tools[{i}].function.name")


# ---------------------------------------------------------------------------- token estimates


def _media_cost(content: Any) -> tuple[int, int]:
    """(image tokens, video tokens) of a message content."""
    img = vid = 0
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "video_url":
            vid += _VIDEO_TOKENS
        elif kind in ("image_url", "file_url"):
            img += _IMAGE_TOKENS
    return img, vid


@dataclass(slots=True)
class _Prompt:
    tokens: int = 0
    image: int = 0
    video: int = 0
    cached: int = 0
    per_message: list[int] = field(default_factory=list)


def _estimate(body: dict[str, Any]) -> _Prompt:
    """GLM's count of the prompt (:mod:`~.prompt_tokens`), media apart."""
    fixed, per_message = request_tokens(body)
    p = _Prompt(tokens=fixed)
    for m, text in zip(body["messages"], per_message, strict=True):
        img, vid = _media_cost(m.get("content"))
        p.per_message.append(text + img + vid)
        p.tokens += text
        p.image += img
        p.video += vid
    return p


def _prompt_cache(st: Any, body: dict[str, Any], prompt: _Prompt) -> int:
    """Longest previously seen message prefix (excluding the last message) -> cached tokens."""
    h = hashlib.blake2b(
        _encode([body.get("model"), body.get("tools")], order="deterministic"), digest_size=16
    )
    cache: collections.OrderedDict[bytes, int] = st.prefix_cache
    total = prompt.tokens + prompt.image + prompt.video - sum(prompt.per_message)
    cached, msgs = 0, body["messages"]
    for i, m in enumerate(msgs):
        h.update(_encode(m, order="deterministic"))
        total += prompt.per_message[i]
        key = h.digest()
        if i < len(msgs) - 1 and key in cache:
            cached = total
            cache.move_to_end(key)
        cache[key] = total
    while len(cache) > _CACHE_ENTRIES:
        cache.popitem(last=False)
    return cached


# ---------------------------------------------------------------------------- the answer
