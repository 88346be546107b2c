"""Whole-configuration checks: what no single setting's converter can see.

Each value is validated on its own by :mod:`glmbridge_server.settings`; some faults only
show when values meet: a ``[models]`` target the chosen ``upstream`` does not serve (the
Coding Plan serves no ``glm-4.6v``) is a well-formed model id that every request routed
to it, and every ``GET /config``, would answer with a 400. :func:`check_settings` resolves
every route the server resolves by itself (Claude's three families, each alias, the
default model, an image turn) before a configuration is used, so a config file fails at
start with one line and ``POST /config`` fails with a 400 that changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from glmbridge import ir
from glmbridge.errors import ClientRequestError
from glmbridge.media.images import IMAGE_MODELS
from glmbridge.routing import DEFAULT_ROUTE_TABLE, RouteTable, resolve_route

if TYPE_CHECKING:  # settings imports this module
    from glmbridge_server.settings import Settings

__all__ = ["ConfigurationError", "check_settings", "route_table"]

#: The names the server itself resolves (``effective_models``, the launcher's env).
_PROBES = {"opus": "claude-opus-4-8", "sonnet": "claude-sonnet-4-5", "haiku": "claude-haiku-4-5"}
#: A client name no alias matches: it routes to the default model.
_UNMATCHED = "glmbridge-probe-unmatched-name"
_IMAGE = ir.ImageBlock(source=ir.MediaSource(type="url", url="https://example.invalid/a.png"))


def route_table(models: Mapping[str, str], upstreams: Mapping[str, str] = {}) -> RouteTable:
    """The routing table for a ``[models]`` map and an ``[upstreams]`` map.

    ``default`` and ``vision`` name the fallback and the media model; every other key of
    ``models`` is a client-name pattern (``opus`` matches any name containing "opus"; globs
    allowed) mapped to a GLM model id. ``upstreams`` pins GLM model ids (globs allowed) to
    an upstream profile. Entries are merged over the built-in table.
    """
    if not models and not upstreams:
        return DEFAULT_ROUTE_TABLE
    # media (issue 21): entries naming an image model route /v1/images/generations instead
    special = ("default", "vision", "side")
    aliases = {k: v for k, v in models.items() if k not in special and v not in IMAGE_MODELS}
    data: dict[str, Any] = {"aliases": aliases, "upstreams": dict(upstreams)}
    if "default" in models:
        data["default_model"] = models["default"]
    if "vision" in models:
        data["vision_model"] = models["vision"]
    if "side" in models:  # "" or "off": side requests follow their names
        data["side_model"] = models["side"]
    return RouteTable.from_mapping(data)


class ConfigurationError(ValueError):
    """A configuration whose values are each valid but do not work together.

    Attributes:
        field: the setting at fault, as a dotted path (``models.opus``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_settings(settings: Settings) -> RouteTable:
    """The routing table of ``settings``, once every route it will resolve is known to
    reach a model its upstream serves.

    Raises:
        ConfigurationError: a route fails (the field names the ``[models]`` entry).
    """
    try:
        table = route_table(settings.models, settings.upstreams)
    except ValueError as exc:
        raise ConfigurationError("models", str(exc)) from None
    profile = settings.upstream_profile
    probes: list[tuple[str, ir.Request]] = []
    for alias in settings.models:
        if alias in ("default", "vision", "side"):
            continue
        probes.append((f"models.{alias}", _ask(alias)))
    probes += [(f"models.{family}", _ask(name)) for family, name in _PROBES.items()]
    probes.append(("models.default", _ask(_UNMATCHED)))
    probes.append(("models.vision", _ask(_UNMATCHED, image=True)))
    for field, request in probes:
        try:
            resolve_route(request, table, upstream=profile)
        except ClientRequestError as exc:
            raise ConfigurationError(field, _reason(exc)) from None
    return table


def _ask(model: str, *, image: bool = False) -> ir.Request:
    content: list[ir.Block] = [ir.TextBlock(text="probe")]
    if image:
        content.insert(0, _IMAGE)
    return ir.Request(model=model, messages=[ir.Message(role="user", content=content)])


def _reason(exc: ClientRequestError) -> str:
    text = str(exc)
    prefix = f"{exc.path}: " if exc.path else ""
    return text.removeprefix(prefix)
