"""Model routing: which GLM model serves a request, decided from a data table.

The router is the only place that looks at model names. It maps the name the client
asked for (``claude-opus-4-5-20251101``, ``GLM-4.6``, ``claude-sonnet-4-5[1m]``) to a
GLM model id and that model's :class:`ModelSpec` (capabilities); converters receive
the spec and never see names. :func:`resolve_route` is pure: the same request and
table always give the same :class:`Route`.

Order of decisions (first match wins):

1. ``override`` (an explicit per-request or per-server choice) — no further checks.
2. a name in the table's ``models``, or any ``glm-*`` name — passed through
   (lowercased, a trailing ``[...]`` suffix removed). Unknown ``glm-*`` ids get a
   conservative spec (128K context, 16K output, no vision).
3. the alias rules, in order (globs on the lowercased name: ``*sonnet*``).
4. ``default_model``.

A client name routed by a built-in rule of 3 or 4 goes to ``side_model`` instead when the
request is a side request (:func:`is_side_request`: Claude Code's WebSearch, WebFetch and
title calls, which name the main model but disable thinking and offer no client tools); a
mapping the user configured is kept.

Then, when ``route_media`` is on and the current user turn (the last user message,
including images inside its ``tool_result`` blocks) holds an image, video or file
document (PDF) that the chosen model cannot take, the route switches to a vision model
the upstream serves (``vision_model`` first). Media in
earlier turns do not switch models: they were answered already, and switching the
whole conversation to a weaker vision model for history alone would cost quality.

Last, the upstream profile (:mod:`glmbridge.profiles`): the table's ``upstreams`` pin
(model id -> profile name) if one matches, else the caller's profile; a profile with a
``media_profile`` (``zai-auto``) hands vision routes, and models it does not serve, to
that profile.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.profiles import DEFAULT_PROFILE, PROFILES, UpstreamProfile
from glmbridge.served import ServedAs

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_ROUTE_TABLE",
    "ModelSpec",
    "Route",
    "RouteTable",
    "TOKENIZER_MODELS",
    "accepted_effort",
    "is_side_request",
    "model_info",
    "normalize_model_name",
    "offered",
    "resolve_route",
    "tokenizer_model",
]

_K = 1024  # Z.ai sizes are binary: the max_tokens cap "128K" is 131072


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What one upstream model can do.

    Attributes:
        id: the upstream model id (lowercase).
        context_window: input + output tokens the model accepts.
        max_output: the cap on ``max_tokens``.
        vision: accepts images. video: accepts videos. files: accepts file parts
            (PDFs): "only for 5.3-Flash, 4.6V, 4.5V" (OAS).
        thinking: ``"always"`` (always reasons and rejects ``thinking: disabled``:
            GLM-5.3), ``"auto"`` (decides for itself whether to reason; can be
            disabled), ``"hybrid"`` (reasons whenever thinking is enabled; can be
            disabled), or ``"none"`` (no thinking parameter). ``"forced"`` is the
            former name of ``"hybrid"``, still accepted in configurations.
        tool_stream: supports GLM's ``tool_stream`` (incremental tool arguments).
        efforts: the ``reasoning_effort`` values the model accepts (empty: it has no
            such parameter, the effort is not sent).
        display_name: a human-readable name for model listings.
    """

    id: str
    context_window: int
    max_output: int
    vision: bool = False
    video: bool = False
    files: bool = False
    thinking: Literal["always", "auto", "hybrid", "forced", "none"] = "hybrid"
    tool_stream: bool = False
    efforts: tuple[str, ...] = ()
    display_name: str | None = None


def _specs(ids: Iterable[str], **caps: Any) -> dict[str, ModelSpec]:
    return {i: ModelSpec(id=i, display_name=i.upper(), **caps) for i in ids}


# The late-2026 table (zai-fidelity, docs/routing.md cites each row). "200K"/"128K" follow the
# binary convention of the max_tokens caps. Thinking modes (THINK53): "always" = GLM-5.3 and
# 5.3-Flash ("can only be enabled"); "auto" = decides for itself (5.2, 5.1, 5, 5-Turbo,
# 5V-Turbo, 4.6, 4.5); "hybrid" = thinks whenever enabled (THINK53's "forced": 4.7, 4.5V).
# tool_stream: "only supported by the GLM-5.3, GLM-5.2, GLM-5.1, GLM-5, GLM-4.7, and GLM-4.6
# series", and the vision request schema has no such field (OAS): never to vision models.
# efforts: reasoning_effort is "supported by GLM-5.2 and above"; 5.3 / 5.3-Flash accept only
# low, high and max (OAS, THINK53).
_EFFORTS_53 = ("low", "high", "max")
_EFFORTS_52 = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
DEFAULT_MODELS: dict[str, ModelSpec] = {
    # "1M" context (https://docs.z.ai/guides/llm/glm-5.3), 1,048,576 in the catalogs
    # (Vercel, NousResearch/hermes-agent), 131,072 output.
    **_specs(
        ["glm-5.3"], context_window=1_048_576, max_output=128 * _K, thinking="always",
        tool_stream=True, efforts=_EFFORTS_53,
    ),
    # Tier-gated on the Coding Plan ("403 not available on plan" below it: anomalyco/models.dev
    # PR#5493, PR#7333): GLM-5.3's spec, marked in model lists.
    "glm-5.3-highspeed": ModelSpec(
        id="glm-5.3-highspeed", context_window=1_048_576, max_output=128 * _K,
        thinking="always", tool_stream=True, efforts=_EFFORTS_53,
        display_name="GLM-5.3-HIGHSPEED (tier-gated)",
    ),
    # 1,048,576 context, 131,072 output, input "image/video/text/file", function calling
    # (https://docs.z.ai/guides/vlm/glm-5.3-flash via open-octo/octo-agent PR#2317); flashx
    # 1,000,000 / 131,072 (Vercel), its inputs assumed like flash's.
    **_specs(
        ["glm-5.3-flash"], context_window=1_048_576, max_output=128 * _K, thinking="always",
        vision=True, video=True, files=True, efforts=_EFFORTS_53,
    ),
    **_specs(
        ["glm-5.3-flashx"], context_window=1_000_000, max_output=128 * _K, thinking="always",
        vision=True, video=True, files=True, efforts=_EFFORTS_53,
    ),
    # 1M context (third-party docs, zai-fidelity 5.3).
    **_specs(
        ["glm-5.2"], context_window=1_000_000, max_output=128 * _K, thinking="auto",
        tool_stream=True, efforts=_EFFORTS_52,
    ),
    **_specs(
        ["glm-5.1", "glm-5"], context_window=200 * _K, max_output=128 * _K, thinking="auto",
        tool_stream=True,
    ),
    # 202,752 tokens (NousResearch/hermes-agent#1877, zai-fidelity 5.3).
    **_specs(
        ["glm-5-turbo"], context_window=202_752, max_output=128 * _K, thinking="auto",
        tool_stream=True,
    ),
    **_specs(
        ["glm-4.7", "glm-4.7-flash", "glm-4.7-flashx"],
        context_window=200 * _K, max_output=128 * _K, thinking="hybrid", tool_stream=True,
    ),
    **_specs(
        ["glm-4.6"], context_window=200 * _K, max_output=128 * _K, thinking="auto",
        tool_stream=True,
    ),
    **_specs(
        ["glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx", "glm-4.5-flash"],
        context_window=128 * _K, max_output=96 * _K, thinking="auto",
    ),
    **_specs(["glm-4-32b-0414-128k"], context_window=128 * _K, max_output=16 * _K, thinking="none"),
    **_specs(
        ["glm-4.6v", "glm-4.6v-flash", "glm-4.6v-flashx"],
        context_window=128 * _K, max_output=32 * _K, vision=True, video=True, files=True,
        thinking="auto",
    ),
    **_specs(
        ["glm-4.5v"], context_window=64 * _K, max_output=16 * _K, vision=True, video=True,
        files=True, thinking="hybrid",
    ),
    # No longer in the OAS enum; context not documented: the 128K of the other vision models.
    **_specs(
        ["glm-5v-turbo"], context_window=128 * _K, max_output=128 * _K, vision=True, video=True,
        thinking="auto",
    ),
}  # fmt: skip
"""The built-in GLM model table (wire-specs A.3)."""

# Claude names -> GLM (docs/routing.md says why). The Coding Plan serves two models since
# September 2026 (glmbridge.profiles.CODING_PLAN_SERVED_AS), GLM-5.3 "across all GLM Coding
# Plan tiers (Lite, Pro, and Max)" (KiwiGaze/glm-for-copilot PR#40; can1357/oh-my-pi#8540).
# Opus and Sonnet (Claude Code's main loop) go to glm-5.3, the strongest model every tier has.
# Haiku (Claude Code's hard-coded claude-haiku-* side requests: titles, summaries, WebFetch)
# and other small side calls go to glm-5.3-flash: about three times GLM-5.3's quota (credit
# multipliers 2.3/0.56/8 against 6.9/1.7/24: stefandevo/glm-acp-agent#96) and native vision.
# Both always think; a "thinking: disabled" side request is adapted, never refused
# (glmbridge.exchange.adapt_request). Other claude-* ids fall to default_model.
_DEFAULT_ALIASES: list[tuple[str, str]] = [
    ("*opus*", "glm-5.3"),
    ("*sonnet*", "glm-5.3"),
    ("*haiku*", "glm-5.3-flash"),
    # gemini-cli's small side requests (routing, next-speaker checks) use flash-lite; its
    # main model (gemini-*-pro / -flash) goes to the default.
    ("gemini-*flash-lite*", "glm-5.3-flash"),
    ("gemma-*", "glm-5.3-flash"),
]
_BUILT_IN_DEFAULT = "glm-5.3"
_SUFFIX = re.compile(r"\s*\[[^\]]*\]$")  # Claude Code's "[1m]" context suffix
_GLOB_CHARS = frozenset("*?[")
_TABLE_KEYS = frozenset(
    {"models", "aliases", "default_model", "vision_model", "side_model", "route_media",
     "upstreams"}
)  # fmt: skip


class RouteTable(msgspec.Struct, frozen=True):
    """The routing data: models, ordered alias rules, and fallbacks.

    Attributes:
        models: model id -> capabilities.
        aliases: ordered ``(glob, model id)`` rules matched on the lowercased name.
        default_model: the model for names nothing else matches.
        vision_model: the preferred model when the current turn has media the chosen
            model cannot read; if the upstream does not serve it (or it has no video
            input for a video), the first capable model of ``models`` it serves.
        side_model: the model for side requests routed by alias or default
            (:func:`is_side_request`); ``None``: they follow the name like any request.
        route_media: whether media switch the model at all.
        upstreams: model id (or glob) -> profile name, pinning those models to a
            profile whatever the server's upstream (``{"glm-4.5-air": "zai-coding"}``).
    """

    models: dict[str, ModelSpec]
    aliases: list[tuple[str, str]]
    default_model: str = _BUILT_IN_DEFAULT
    vision_model: str = "glm-5.3-flash"
    side_model: str | None = "glm-5.3-flash"
    route_media: bool = True
    upstreams: dict[str, str] = {}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base: RouteTable | None = None) -> RouteTable:
        """Merge user configuration over ``base`` (the built-in table by default).

        Keys: ``models`` (id -> spec fields; an existing id may give only the fields
        to change), ``aliases`` (``{"opus": "glm-5.1"}`` or a list of pairs; a key
        without glob characters means "contains": ``"*opus*"``; user rules come first
        and replace a built-in rule with the same pattern), ``default_model``,
        ``vision_model``, ``route_media``, ``upstreams`` (model glob -> profile name).

        Raises:
            ValueError: an unknown key, a bad spec, or a target that is no model.
        """
        base = DEFAULT_ROUTE_TABLE if base is None else base
        if not isinstance(data, Mapping):
            raise ValueError("routing config must be a mapping")
        unknown = sorted(set(data) - _TABLE_KEYS)
        if unknown:
            raise ValueError(f"routing: unknown key(s) {unknown}; expected {sorted(_TABLE_KEYS)}")
        models = _merge_models(base.models, data.get("models", {}))
        aliases = _merge_aliases(base.aliases, data.get("aliases", {}))
        table = cls(
            models=models,
            aliases=aliases,
            default_model=_model_id(data.get("default_model", base.default_model), "default_model"),
            vision_model=_model_id(data.get("vision_model", base.vision_model), "vision_model"),
            side_model=_optional_model(data.get("side_model", base.side_model), "side_model"),
            route_media=data.get("route_media", base.route_media),
            upstreams=_merge_upstreams(base.upstreams, data.get("upstreams", {})),
        )
        if not isinstance(table.route_media, bool):
            raise ValueError("routing.route_media: expected true or false")
        _check_targets(table)
        return table


class Route(msgspec.Struct, frozen=True):
    """The routing decision.

    Attributes:
        model: the upstream model id.
        spec: its capabilities.
        reason: why: ``"override"``, ``"passthrough"``, ``"alias:<glob>"``,
            ``"default"`` or ``"vision"``.
        upstream: the profile that serves it.
    """

    model: str
    spec: ModelSpec
    reason: str
    upstream: UpstreamProfile = PROFILES[DEFAULT_PROFILE]


def _merge_models(base: dict[str, ModelSpec], extra: Any) -> dict[str, ModelSpec]:
    if not isinstance(extra, Mapping):
        raise ValueError("routing.models: expected a mapping of model id to spec")
    models = dict(base)
    for raw_id, fields in extra.items():
        model_id = _model_id(raw_id, "routing.models key")
        where = f"routing.models.{model_id}"
        if not isinstance(fields, Mapping):
            raise ValueError(f"{where}: expected a mapping of spec fields")
        if fields.get("id", model_id) != model_id:
            raise ValueError(f"{where}: id {fields['id']!r} differs from its key")
        merged: dict[str, Any] = {}
        if model_id in models:
            merged = msgspec.structs.asdict(models[model_id])
        merged.update(fields, id=model_id)
        try:
            models[model_id] = msgspec.convert(merged, ModelSpec)
        except msgspec.ValidationError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return models


def _merge_aliases(base: list[tuple[str, str]], extra: Any) -> list[tuple[str, str]]:
    if isinstance(extra, Mapping):
        pairs = list(extra.items())
    elif isinstance(extra, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in extra
    ):
        pairs = [tuple(p) for p in extra]
    else:
        raise ValueError("routing.aliases: expected a mapping or a list of [pattern, model] pairs")
    rules: list[tuple[str, str]] = []
    for pattern, target in pairs:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError(f"routing.aliases: pattern {pattern!r} must be a non-empty string")
        glob = pattern.strip().lower()
        if not _GLOB_CHARS & set(glob):
            glob = f"*{glob}*"
        rules.append((glob, _model_id(target, f"routing.aliases.{pattern}")))
    overridden = {glob for glob, _ in rules}
    return rules + [rule for rule in base if rule[0] not in overridden]


def _merge_upstreams(base: dict[str, str], extra: Any) -> dict[str, str]:
    if not isinstance(extra, Mapping):
        raise ValueError("routing.upstreams: expected a mapping of model id to profile name")
    pins = dict(base)
    for model, profile in extra.items():
        if profile not in PROFILES:
            raise ValueError(
                f"routing.upstreams.{model}: unknown profile {profile!r}; "
                f"expected one of {', '.join(PROFILES)}"
            )
        pins[_model_id(model, "routing.upstreams key")] = profile
    return pins


def _optional_model(value: Any, where: str) -> str | None:
    """A model id, or ``None`` for ``None`` / ``""`` / ``"off"`` (the feature is off)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return None
    return _model_id(value, where)


def _model_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a model id string, got {value!r}")
    return normalize_model_name(value)


def _check_targets(table: RouteTable) -> None:
    """Every alias target and fallback must be a known model or a ``glm-*`` id."""
    targets = [("default_model", table.default_model)]
    if table.side_model is not None:
        targets.append(("side_model", table.side_model))
    targets += [(f"aliases.{glob}", target) for glob, target in table.aliases]
    for where, target in targets:
        if target not in table.models and not target.startswith("glm-"):
            raise ValueError(f"routing.{where}: {target!r} is not a model in routing.models")
    vision = table.models.get(table.vision_model)
    if vision is None or not vision.vision:
        raise ValueError(f"routing.vision_model: {table.vision_model!r} is not a vision model")


def normalize_model_name(name: str) -> str:
    """Lowercase, trim, and drop a trailing ``[...]`` suffix (``[1m]``)."""
    return _SUFFIX.sub("", name.strip()).lower()


def _conservative_spec(model_id: str) -> ModelSpec:
    """Capabilities assumed for a model the table does not know."""
    return ModelSpec(id=model_id, context_window=128 * _K, max_output=16 * _K)


def _family_spec(models: Mapping[str, ModelSpec], model_id: str) -> ModelSpec | None:
    """The spec of the nearest known family of an unknown id: ``glm-5.3-prime`` and
    ``glm-5.3-highspeed`` are GLM-5.3 variants (models.dev PR#5493; OpenRouter's
    ``z-ai/glm-5.3-prime``), so they inherit its thinking mode, efforts and output, as
    ``glm-5.3-flash-*`` inherits glm-5.3-flash's. Only ``-`` suffixes count (``glm-5.35``
    is no family of ``glm-5.3``)."""
    stem = model_id
    while "-" in stem.removeprefix("glm-"):
        stem = stem.rsplit("-", 1)[0]
        spec = models.get(stem)
        if spec is not None:
            return msgspec.structs.replace(spec, id=model_id, display_name=model_id.upper())
    return None


def _spec_for(table: RouteTable, model_id: str) -> ModelSpec:
    spec = table.models.get(model_id)
    if spec is None:
        spec = _family_spec(table.models, model_id) or _conservative_spec(model_id)
    return spec


def _current_turn_media(req: ir.Request) -> tuple[bool, bool, bool]:
    """(has image, has video, has a file document such as a PDF) in the last user
    message, tool results included."""
    image = video = files = False
    for message in reversed(req.messages):
        if message.role != "user":
            continue
        for block in message.content:
            inner = block.content if isinstance(block, ir.ToolResultBlock) else (block,)
            for part in inner:
                image = image or isinstance(part, ir.ImageBlock)
                video = video or isinstance(part, ir.VideoBlock)
                files = files or (isinstance(part, ir.DocumentBlock) and part.source.type != "text")
        break
    return image, video, files


DEFAULT_ROUTE_TABLE = RouteTable(models=DEFAULT_MODELS, aliases=_DEFAULT_ALIASES)
"""The built-in routing: Claude names to GLM-5.3 / GLM-5.3-Flash, media to GLM-5.3-Flash (the
Coding Plan's only vision model)."""


def _route_by_name(table: RouteTable, name: str) -> Route:
    """Steps 2-4 of the module docstring: passthrough, aliases, default."""
    if name in table.models or name.startswith("glm-"):
        return Route(name, _spec_for(table, name), "passthrough")
    for glob, target in table.aliases:
        if fnmatchcase(name, glob):
            return Route(target, _spec_for(table, target), f"alias:{glob}")
    return Route(table.default_model, _spec_for(table, table.default_model), "default")


def is_side_request(req: ir.Request) -> bool:
    """Whether ``req`` is a client's side request rather than its main loop: it disables
    thinking and offers no client tools (server tools such as ``web_search`` allowed).
    Claude Code's WebSearch, WebFetch and title requests name the main model that way
    (tests/fixtures/claude_code: web_search_request.json, web_fetch_request.json,
    request_small.json); its main loop and subagents offer tools, and its haiku-class
    calls are routed by their name already."""
    off = req.thinking is not None and req.thinking.type == "disabled"
    return off and all(tool.server_type is not None for tool in req.tools)


def _built_in(route: Route) -> bool:
    """Whether ``route`` came from a built-in alias rule or the built-in default (a mapping
    the user configured is kept for side requests too)."""
    if route.reason == "default":
        return route.model == _BUILT_IN_DEFAULT
    glob = route.reason.removeprefix("alias:")
    return (glob, route.model) in _DEFAULT_ALIASES


def _side_route(route: Route, table: RouteTable, req: ir.Request) -> Route:
    side = table.side_model
    if side is None or route.model == side or not _built_in(route):
        return route
    if not is_side_request(req):
        return route
    return Route(side, _spec_for(table, side), f"side:{route.reason}")


# GLM's reasoning_effort ladder, lowest first (OAS; THINK53).
_EFFORT_LADDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def accepted_effort(effort: str | None, spec: ModelSpec) -> str | None:
    """The effort level to send for the IR ``effort``, given the values the model accepts
    (``spec.efforts``, GLM's ``reasoning_effort``); ``None``: send none (the model's
    default, ``max``).

    An accepted value is sent as is; another one rounds up to the next accepted level
    (GLM-5.3 accepts only low/high/max, so ``medium`` -> ``high``, as GLM-5.2 maps it
    itself), or down to the highest one if nothing is above it.
    """
    accepted = spec.efforts
    if effort is None or not accepted:
        return None
    if effort in accepted:
        return effort
    if effort not in _EFFORT_LADDER:
        return None
    rank = _EFFORT_LADDER.index(effort)
    ranked = sorted((_EFFORT_LADDER.index(a), a) for a in accepted if a in _EFFORT_LADDER)
    above = [a for r, a in ranked if r > rank]
    if above:
        return above[0]
    return ranked[-1][1] if ranked else None


TOKENIZER_MODELS = ("glm-4.6", "glm-4.6v", "glm-4.5")
"""The ``model`` values GLM's tokenizer API accepts (OAS ``TokenizerRequest`` enum)."""


def tokenizer_model(*, vision: bool) -> str:
    """The model to name in a tokenizer request: ``glm-4.6v`` for media, else ``glm-4.6``
    (the text tokenizer of the GLM-4.6+ family)."""
    return TOKENIZER_MODELS[1] if vision else TOKENIZER_MODELS[0]


def model_info(
    name: str, table: RouteTable = DEFAULT_ROUTE_TABLE, *, upstream: UpstreamProfile | None = None
) -> ModelSpec:
    """The capabilities of the GLM model that serves requests for ``name``.

    ``name`` is what a client asks for (``claude-sonnet-4-5[1m]``, ``opus``, ``GLM-5.3``):
    it is resolved as :func:`resolve_route` does without a request (pass-through, aliases,
    default; no media switch, no override). Read ``context_window`` and ``max_output``
    from the result (a launcher sets a client's context window from it). An unknown
    ``glm-*`` id gets its family's spec (``glm-5.3-prime``: GLM-5.3's), else the
    conservative one. With ``upstream``, an id that profile answers with another model
    (the Coding Plan's ``glm-4.7``) gets the serving model's spec.
    """
    route = _route_by_name(table, normalize_model_name(name))
    if upstream is not None:
        route = _served_spec(route, table, upstream, None)
    return route.spec


def _served_spec(
    route: Route, table: RouteTable, profile: UpstreamProfile, learned: ServedAs | None
) -> Route:
    """``route`` with the spec of the model that really answers it on ``profile``: what an
    answer taught (``learned``) first, else the profile's served-as table."""
    known = learned.known(profile.name, route.model) if learned is not None else None
    serving = known if known is not None else profile.serving(route.model)
    if serving is None or serving == route.model:
        return route
    return msgspec.structs.replace(route, spec=_spec_for(table, serving))


def _lacks_media(spec: ModelSpec, image: bool, video: bool, files: bool) -> bool:
    return (image and not spec.vision) or (video and not spec.video) or (files and not spec.files)


def resolve_route(
    req: ir.Request,
    table: RouteTable = DEFAULT_ROUTE_TABLE,
    *,
    override: str | None = None,
    upstream: UpstreamProfile | None = None,
    learned: ServedAs | None = None,
) -> Route:
    """Pick the upstream model and profile for ``req`` (see the module docstring).

    Args:
        req: the request; its ``model`` is the client's name, its last user turn is
            checked for media.
        table: the routing data.
        override: a model id that wins outright (no media or plan check): an explicit
            choice is honoured even if the model cannot read the images.
        upstream: the server's profile (default: the Coding Plan's chat API).
        learned: what answers taught about which model serves an id (per profile).

    The route's ``model`` is the id sent; its ``spec`` is that of the model that answers
    it on the chosen profile (the Coding Plan answers ``glm-4.7`` with GLM-5.3-Flash:
    :data:`glmbridge.profiles.CODING_PLAN_SERVED_AS`), so thinking mode, efforts, window
    and output cap are the serving model's.

    Raises:
        ClientRequestError: the route names a model of the table that the upstream
            profile does not serve (a model outside the Coding Plan); the message names
            the model, the profile and what it serves.
    """
    base = upstream or PROFILES[DEFAULT_PROFILE]
    if override is not None:
        model = normalize_model_name(override)
        route = Route(model, _spec_for(table, model), "override")
        profile = _profile_for(route, table, base)
        route = _served_spec(route, table, profile, learned)
        return msgspec.structs.replace(route, upstream=profile)
    route = _side_route(_route_by_name(table, normalize_model_name(req.model)), table, req)
    profile = _profile_for(route, table, base)
    served = _served_spec(route, table, profile, learned)
    if table.route_media:
        image, video, files = _current_turn_media(req)
        # Both the id's own spec and its server's must take the media: whether the plan
        # checks the parts against the id asked for or the model that serves is not known.
        if _lacks_media(route.spec, image, video, files) or _lacks_media(
            served.spec, image, video, files
        ):
            model = _vision_model(table, base, video=video, files=files)
            route = Route(model, _spec_for(table, model), "vision")
            profile = _profile_for(route, table, base)
            served = _served_spec(route, table, profile, learned)
    _check_served(served, table, profile)
    return msgspec.structs.replace(served, upstream=profile)


def _pinned(model: str, table: RouteTable) -> str | None:
    for glob, name in table.upstreams.items():
        if fnmatchcase(model, glob):
            return name
    return None


def _profile_for(route: Route, table: RouteTable, profile: UpstreamProfile) -> UpstreamProfile:
    pin = _pinned(route.model, table)
    if pin is not None:
        return PROFILES[pin]
    via = profile.media_profile
    if via is not None and (route.reason == "vision" or not profile.serves(route.model)):
        return PROFILES[via]
    return profile


def _vision_model(
    table: RouteTable, profile: UpstreamProfile, *, video: bool, files: bool = False
) -> str:
    """The vision model for a media turn: ``vision_model`` if the upstream that takes media
    turns serves it (and reads the turn's videos and files), else the first such model of
    the table; an image-only model when nothing better is served (a video becomes a
    placeholder); ``vision_model`` when nothing is served at all."""
    candidates = [table.vision_model, *(m for m in table.models if m != table.vision_model)]
    capable = [m for m in candidates if _spec_for(table, m).vision]
    probe = Route("", _spec_for(table, table.vision_model), "vision")

    def served(model: str) -> bool:
        target = _profile_for(msgspec.structs.replace(probe, model=model), table, profile)
        return target.serves(model)

    for need_video, need_files in ((video, files), (False, files), (False, False)):
        for model in capable:
            spec = _spec_for(table, model)
            if need_video and not spec.video or need_files and not spec.files:
                continue
            if served(model):
                return model
    return table.vision_model


def offered(
    table: RouteTable, profile: UpstreamProfile, live: Collection[str] | None = None
) -> RouteTable:
    """``table`` with only the models a model list should offer on ``profile``: a built-in
    model the profile is known not to serve is left out (picking it would be the 400 of
    :func:`resolve_route`), and so is one it only accepts as an alias of another (the
    Coding Plan's ``glm-4.7``: ``profile.listed``); models a configuration adds and pinned
    ones stay.

    ``live``: the ids the upstream's own model list names now (``GET {base}/models``): a
    built-in model it does not name is left out too, and a ``glm-*`` id the table does not
    know is added with its family's spec (:func:`model_info`)."""
    keep = {
        model_id: spec
        for model_id, spec in table.models.items()
        if model_id not in DEFAULT_MODELS
        or _pinned(model_id, table) is not None
        or (
            profile.serves(model_id)
            and profile.lists(model_id)
            and (live is None or model_id in live)
        )
    }
    for model_id in sorted(live or ()):
        # a new id, not an alias of a listed model
        new = model_id.startswith("glm-") and model_id not in table.models
        if new and profile.serving(model_id) is None:
            keep[model_id] = _spec_for(table, model_id)
    if keep == table.models:
        return table
    return msgspec.structs.replace(table, models=keep)


def _check_served(route: Route, table: RouteTable, profile: UpstreamProfile) -> None:
    """Never send a model of the table to a profile known not to serve it (the Coding
    Plan answers 404, 400/1210, 400/1214 or 429/1113: zai-fidelity 1.3). Only the built-in
    models are checked: unknown ids and models a configuration adds go through (the
    upstream decides); a pin in ``upstreams`` is an explicit choice."""
    if route.model not in DEFAULT_MODELS or profile.serves(route.model):
        return
    if _pinned(route.model, table) is not None:
        return
    served = [m for m in table.models if profile.serves(m)]
    raise ClientRequestError(
        f"model {route.model!r} is not served by the {profile.name} upstream "
        f"({profile.title or profile.name}); it serves {', '.join(served) or 'none of ours'}. "
        "Choose one of those, or map this name to one in the [models] configuration",
        path="model",
    )
