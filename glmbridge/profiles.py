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
    "CODING_PLAN_MODELS",
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
# The Coding Plan, Aug 2026 (Pro): "glm-5.2, glm-5.1, glm-5-turbo, glm-5, glm-4.7, glm-4.6,
# glm-4.5, glm-4.5-air, glm-5.3, glm-5.3-flash" (aaif-goose/goose#11667, 2026-08-28); no other
# vision model: glm-4.6v -> 404 (dejay2/glmproxy#9), GLM-4.6V-FlashX -> 429/1113
# (zai-org/feedback#789); glm-4.7-flashx is not in the plans (modu-ai/moai-adk#437). BigModel's
# coding endpoint is the same plan (BM).
CODING_PLAN_MODELS = (
    "glm-5.3", "glm-5.3-flash", "glm-5.2", "glm-5.1", "glm-5-turbo", "glm-5",
    "glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-air",
)  # fmt: skip
# Pay-as-you-go: the OpenAPI model enums, text and vision (OAS, ~Sep-Oct 2026; zai-fidelity
# 5.1, 5.2), plus glm-5-turbo and glm-5v-turbo, which left the enum but are still served
# (goose#11667; NousResearch/hermes-agent#51476).
PAYG_MODELS = (
    "glm-5.3", "glm-5.2", "glm-5.1", "glm-5-turbo", "glm-5", "glm-4.7", "glm-4.7-flash",
    "glm-4.7-flashx", "glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-airx",
    "glm-4.5-flash", "glm-4-32b-0414-128k", "glm-5.3-flashx", "glm-5.3-flash", "glm-4.6v",
    "glm-4.6v-flash", "glm-4.6v-flashx", "glm-4.5v", "glm-5v-turbo", "autoglm-*",
)  # fmt: skip


def _chat(name: str, url: str, title: str, models: tuple[str, ...]) -> UpstreamProfile:
    return UpstreamProfile(
        name=name, base_url=url, tokenizer=True, title=title, models=models,
        plan=models is CODING_PLAN_MODELS,
    )  # fmt: skip


def _anthropic(name: str, url: str, media_profile: str | None = None) -> UpstreamProfile:
    # x-api-key: what the Anthropic SDKs send and what proxies of this endpoint send
    # (seed-glmproxy §4.6; wire-specs A.2: Bearer works too).
    return UpstreamProfile(
        name=name,
        base_url=url,
        protocol="anthropic",
        auth_header="x-api-key",
        auth_scheme="",
        models=("glm-*",),  # which models this endpoint serves is not documented
        title="Z.ai's Anthropic-compatible endpoint",
        media_profile=media_profile,
    )


_ZAI_ANTHROPIC = "https://api.z.ai/api/anthropic"
PROFILES: dict[str, UpstreamProfile] = {
    p.name: p
    for p in (
        _chat("zai-coding", "https://api.z.ai/api/coding/paas/v4", "GLM Coding Plan",
              CODING_PLAN_MODELS),
        _chat("zai", "https://api.z.ai/api/paas/v4", "Z.ai pay-as-you-go", PAYG_MODELS),
        _chat("bigmodel-coding", "https://open.bigmodel.cn/api/coding/paas/v4",
              "BigModel GLM Coding Plan", CODING_PLAN_MODELS),
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
                    title=f"GLM Coding Plan (via {host})",
                )  # fmt: skip
    return profile
