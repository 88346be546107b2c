"""Upstream profiles: where a request goes and which protocol it speaks there, as data.

A profile is a base URL, a wire protocol (``openai`` chat with a dialect, or
``anthropic``), an auth header, the models it serves, and whether it has GLM's
tokenizer. The router (:func:`glmbridge.routing.resolve_route`) names the profile
that serves a request; the exchange picks the codec from the profile's protocol.
Nothing else in the library or the server names a codec or a URL.

``zai-auto`` (like the glmproxy seed's default) sends a turn whose current user
message carries an image or video through its ``media_profile`` (GLM's chat API, to a
vision model) and everything else through Z.ai's Anthropic-compatible endpoint.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "BIGMODEL_CODING_PLAN_MODELS",
    "CODING_PLAN_MODELS",
    "CODING_PLAN_SERVED_AS",
    "DEFAULT_PROFILE",
    "PAYG_MODELS",
    "PROFILES",
    "UpstreamProfile",
    "profile_for",
]

Protocol = Literal["openai", "anthropic"]


class UpstreamProfile(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream surface.

    Attributes:
        name: the profile name (``zai-coding``), or the host of a custom URL.
        base_url: the base URL; the codec appends its path (``/chat/completions``,
            ``/v1/messages``).
        protocol: the wire protocol spoken there.
        dialect: the OpenAI dialect (``glm`` or ``openai``); ignored for ``anthropic``.
        auth_header: the header that carries the key.
        auth_scheme: what precedes the key in it (``"Bearer "`` or nothing).
        models: globs of the model ids served (``("*",)``: any). The router never
            sends a model of its table to a profile that does not list it.
        title: what the profile is, for messages (``"GLM Coding Plan"``).
        plan: a subscription-plan endpoint (the Coding Plan): ``models`` are what the
            plan includes, and an upstream "not in your plan" answer is reported as such
            (:func:`glmbridge.upstream_errors.plan_error`).
        tokenizer: the base has GLM's ``/tokenizer`` endpoint.
        media_profile: another profile that serves turns with images or video.
        served_as: ``(requested id, serving id)`` pairs: ids the upstream accepts but
            answers with another model (the Coding Plan since September 2026); the router
            applies the serving model's spec (:func:`glmbridge.routing.resolve_route`).
        listed: globs of the served models a model list offers (empty: all of them); the
            Coding Plan accepts legacy ids it answers with GLM-5.3 or GLM-5.3-Flash.
    """

    name: str
    base_url: str
    protocol: Protocol = "openai"
    dialect: Literal["glm", "openai"] = "glm"
    auth_header: str = "authorization"
    auth_scheme: str = "Bearer "
    models: tuple[str, ...] = ("*",)
    title: str = ""
    plan: bool = False
    tokenizer: bool = False
    media_profile: str | None = None
    served_as: tuple[tuple[str, str], ...] = ()
    listed: tuple[str, ...] = ()

    def lists(self, model: str) -> bool:
        """Whether a model list offers ``model`` here (see ``listed``)."""
        return not self.listed or any(fnmatchcase(model, glob) for glob in self.listed)

    def serving(self, model: str) -> str | None:
        """The model that answers a request for ``model`` here when it is another one
        (``glm-4.7`` -> ``glm-5.3-flash`` on the Coding Plan), else ``None``."""
        for requested, serving in self.served_as:
            if requested == model:
                return serving
        return None

    def serves(self, model: str) -> bool:
        """Whether this profile serves ``model`` (a lowercase upstream model id)."""
        return any(fnmatchcase(model, glob) for glob in self.models)

    def auth_headers(self, key: str) -> dict[str, str]:
        """The request header that carries ``key``."""
        return {self.auth_header: self.auth_scheme + key}

    @property
    def label(self) -> str:
        """A secret-free label: the name, never credentials embedded in a URL."""
        return self.name


# What each surface serves (docs/routing.md cites them).
# The Coding Plan since September 2026: "All plans support GLM-5.3 and GLM-5.3-Flash. Calls to
# the legacy models GLM-5.2 and GLM-5.1 are switched automatically to GLM-5.3, and calls to
# GLM-5-Turbo and GLM-4.7 to GLM-5.3-Flash" (https://docs.bigmodel.cn/cn/coding-plan/overview,
# quoted in earendil-works/pi#9616; Z.ai's https://docs.z.ai/devpack/latest-model says the same:
# Th0rgal/sandboxed.sh PR#824, stefandevo/glm-acp-agent PR#97). A live check saw the answer's
# `model` name the model that served (anomalyco/models.dev PR#7331). The legacy ids are still
# accepted, so they stay listed; glm-4.6, glm-4.5 and glm-4.5-air are in no announcement (the
# router learns what serves them from the answers). glm-5.3-highspeed is tier-gated ("403 not
# available on plan" below it: models.dev PR#5493, PR#7333). No other vision model on Z.ai's
# host: glm-4.6v -> 404 (dejay2/glmproxy#9), GLM-4.6V-FlashX -> 429/1113 (zai-org/feedback#789).
CODING_PLAN_MODELS = (
    "glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed", "glm-5.2", "glm-5.1", "glm-5-turbo",
    "glm-5", "glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-air",
)  # fmt: skip
# BigModel's coding endpoint still answers glm-4.6v as itself (models.dev PR#7331 live check).
BIGMODEL_CODING_PLAN_MODELS = (*CODING_PLAN_MODELS, "glm-4.6v")
# Which model answers each legacy id on the plan (same sources). glm-5 is GLM-5.2's and 5.1's
# predecessor and is served like them.
CODING_PLAN_SERVED_AS: tuple[tuple[str, str], ...] = (
    ("glm-5.2", "glm-5.3"), ("glm-5.1", "glm-5.3"), ("glm-5", "glm-5.3"),
    ("glm-5-turbo", "glm-5.3-flash"), ("glm-4.7", "glm-5.3-flash"),
)  # fmt: skip
# What a model list offers on the plan: the two models it serves, the tier-gated variant.
CODING_PLAN_LISTED = ("glm-5.3", "glm-5.3-flash", "glm-5.3-highspeed")
# Pay-as-you-go: the OpenAPI model enums, text and vision (OAS, ~Sep-Oct 2026; zai-fidelity
# 5.1, 5.2), plus glm-5-turbo and glm-5v-turbo, which left the enum but are still served
# (goose#11667; NousResearch/hermes-agent#51476).
PAYG_MODELS = (
    "glm-5.3", "glm-5.2", "glm-5.1", "glm-5-turbo", "glm-5", "glm-4.7", "glm-4.7-flash",
    "glm-4.7-flashx", "glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx",
    "glm-4.5-flash", "glm-4-32b-0414-128k", "glm-5.3-flashx", "glm-5.3-flash", "glm-4.6v",
    "glm-4.6v-flash", "glm-4.6v-flashx", "glm-4.5v", "glm-5v-turbo", "autoglm-*",
)  # fmt: skip


def _chat(
    name: str, url: str, title: str, models: tuple[str, ...], plan: bool = False
) -> UpstreamProfile:
    # BigModel's tokenizer takes only glm-4-plus / glm-4-0520 / glm-4-long / glm-4-air /
    # glm-4-flash (https://docs.bigmodel.cn/api-reference, 文本分词器), none of the GLM-4.6+
    # family we count for: the local estimate there.
    tokenizer = "bigmodel.cn" not in url
    return UpstreamProfile(
        name=name, base_url=url, tokenizer=tokenizer, title=title, models=models, plan=plan,
        served_as=CODING_PLAN_SERVED_AS if plan else (),
        # BigModel's coding host still answers glm-4.6v as itself: listed there.
        listed=(*CODING_PLAN_LISTED, *(m for m in models if m == "glm-4.6v")) if plan else (),
    )  # fmt: skip


def _anthropic(name: str, url: str, media_profile: str | None = None) -> UpstreamProfile:
    # x-api-key: what the Anthropic SDKs send and what proxies of this endpoint send
    # (seed-glmproxy §4.6; wire-specs A.2: Bearer works too). Z.ai's Anthropic endpoint is a
    # Coding Plan surface, and the consolidation is plan-wide ("all plans", above): the same
    # served-as table applies there, and to a custom URL speaking this protocol (a relay of it).
    return UpstreamProfile(
        name=name,
        base_url=url,
        protocol="anthropic",
        auth_header="x-api-key",
        auth_scheme="",
        models=("glm-*",),  # which models this endpoint serves is not documented
        title="Z.ai's Anthropic-compatible endpoint",
        media_profile=media_profile,
        served_as=CODING_PLAN_SERVED_AS,
        listed=CODING_PLAN_LISTED,
    )


_ZAI_ANTHROPIC = "https://api.z.ai/api/anthropic"
PROFILES: dict[str, UpstreamProfile] = {
    p.name: p
    for p in (
        _chat("zai-coding", "https://api.z.ai/api/coding/paas/v4", "GLM Coding Plan",
              CODING_PLAN_MODELS, plan=True),
        _chat("zai", "https://api.z.ai/api/paas/v4", "Z.ai pay-as-you-go", PAYG_MODELS),
        _chat("bigmodel-coding", "https://open.bigmodel.cn/api/coding/paas/v4",
              "BigModel GLM Coding Plan", BIGMODEL_CODING_PLAN_MODELS, plan=True),
        _chat("bigmodel", "https://open.bigmodel.cn/api/paas/v4", "BigModel pay-as-you-go",
              PAYG_MODELS),
        _anthropic("zai-anthropic", _ZAI_ANTHROPIC),
        _anthropic("bigmodel-anthropic", "https://open.bigmodel.cn/api/anthropic"),
        _anthropic("zai-auto", _ZAI_ANTHROPIC, media_profile="zai-coding"),
        _anthropic(
            "bigmodel-auto", "https://open.bigmodel.cn/api/anthropic",
            media_profile="bigmodel-coding",
        ),
    )
}  # fmt: skip
"""The built-in profiles (wire-specs A.1, A.13)."""

DEFAULT_PROFILE = "zai-coding"


def profile_for(name_or_url: str, *, protocol: Protocol | None = None) -> UpstreamProfile:
    """A built-in profile by name, or a custom OpenAI-compatible (GLM dialect) base URL.

    Args:
        name_or_url: a key of :data:`PROFILES`, or an ``http(s)://`` base URL.
        protocol: for a URL, the protocol it speaks (default ``openai``).

    Raises:
        ValueError: neither a known profile nor an http(s) URL.
    """
    profile = PROFILES.get(name_or_url)
    if profile is None:
        parts = urlsplit(name_or_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"unknown upstream {name_or_url!r}: use one of {', '.join(PROFILES)} "
                "or an http(s) base URL"
            )
        host = parts.netloc.rpartition("@")[2]
        if protocol == "anthropic":
            profile = _anthropic(host, name_or_url.rstrip("/"))
        else:
            # Asked once; a 404/405 answer marks it absent (the server remembers).
            profile = UpstreamProfile(name=host, base_url=name_or_url.rstrip("/"), tokenizer=True)
            if "/coding/" in parts.path:
                # A Coding Plan path (a proxy of it, the simulator, --mock): the plan's models.
                profile = msgspec.structs.replace(
                    profile, models=CODING_PLAN_MODELS, plan=True,
                    title=f"GLM Coding Plan (via {host})", served_as=CODING_PLAN_SERVED_AS,
                    listed=CODING_PLAN_LISTED,
                )  # fmt: skip
    return profile
