"""Wire protocols, one package each, and the registry that picks an upstream codec.

A front door is named by the server route that serves it (``anthropic.DOOR``); an
upstream codec is picked here from the profile's protocol, so no server module names
one.

Every package names its modules by role, and a name means the same thing in each (a
package has the modules of the roles it plays):

* door side: ``door_request`` (a client's request -> IR), ``door_response`` (IR -> the
  client's answer body), ``door_stream`` (IR events -> the client's stream),
  ``grammar`` (the validator of what ``door_stream`` promises), ``door`` (the
  :class:`~glmbridge.roles.FrontDoor` object);
* upstream side: ``upstream_request`` (IR -> the upstream's request body),
  ``upstream_response`` (its answer body -> IR), ``upstream_stream`` (its SSE payloads
  -> IR events), ``upstream`` (the :class:`~glmbridge.roles.UpstreamCodec` object);
* both: ``wire`` (msgspec Structs: shapes only), ``errors`` (error bodies and events
  out, upstream error bodies in).

The modules of the old names (``request``, ``response``, ``stream``) remain as
deprecated aliases.
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
