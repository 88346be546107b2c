"""Wire protocols, one package each, and the registry that picks an upstream codec.

A front door is named by the server route that serves it (``anthropic.DOOR``); an
upstream codec is picked here from the profile's protocol, so no server module names
one.
"""

from __future__ import annotations

from glmbridge.profiles import UpstreamProfile
from glmbridge.protocols.anthropic import AnthropicUpstream
from glmbridge.protocols.openai import DIALECTS, ChatUpstream
from glmbridge.roles import UpstreamCodec

__all__ = ["upstream_codec"]


def upstream_codec(profile: UpstreamProfile) -> UpstreamCodec:
    """The codec for ``profile``'s protocol and dialect (stateless and cheap to make)."""
    if profile.protocol == "anthropic":
        return AnthropicUpstream()
    return ChatUpstream(DIALECTS[profile.dialect])
