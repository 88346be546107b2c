"""``GET /config`` (the effective configuration, secrets redacted) and ``POST /config``.

A ``POST`` body is a JSON object validated by a strict schema (:class:`ConfigUpdate`):
an unknown field, a setting that cannot change while running, or a bad value is a ``400``
naming the field, and nothing changes. A valid update builds a new immutable
:class:`Settings` plus routing table and model catalog, then swaps all three on
``app.state`` in one step (no ``await`` in between), so every client sees the change at
once while requests already running finish with the configuration they started with.

With ``workers`` > 1 a ``POST`` is a ``409``: it would change one worker process only.

Only non-secret operational settings can change: keys, the auth token, the bind address,
the allowed hosts and origins, and custom upstream URLs need a restart. A leaked token
therefore cannot point the server (and its API keys) at another host.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from glmbridge import ir
from glmbridge.errors import ClientRequestError, GlmbridgeError
from glmbridge.profiles import PROFILES
from glmbridge.routing import RouteTable, offered, resolve_route
from glmbridge_server.call.record import snapshot
from glmbridge_server.edge.bodies import read_body
from glmbridge_server.edge.routes import app_state, error_response, record_of
from glmbridge_server.edge.routes.anthropic import build_model_catalog
from glmbridge_server.settings import Settings, convert_setting, keys_fingerprint
from glmbridge_server.settings_check import ConfigurationError, check_settings
from glmbridge_server.upstream.model_follower import live_models

__all__ = ["ConfigUpdate", "apply_update", "effective_models", "routes"]

logger = logging.getLogger("glmbridge.server")

_MAX_CONFIG_BODY = 64 * 1024
_PROBES = {"opus": "claude-opus-4-8", "sonnet": "claude-sonnet-4-5", "haiku": "claude-haiku-4-5"}
Seconds = Annotated[float, msgspec.Meta(ge=0, le=86400)]
_UNSET = msgspec.UNSET


class ConfigUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The settings ``POST /config`` may change; omitted fields keep their value.

    ``models`` is a JSON merge patch over the current ``[models]`` map: ``{"opus":
    "glm-5.1"}`` sets one entry, ``{"opus": null}`` removes it (back to the built-in rule).
    """

    models: dict[str, str | None] | msgspec.UnsetType = _UNSET
    thinking: Literal["auto", "enabled", "disabled"] | msgspec.UnsetType = _UNSET
    upstream: str | msgspec.UnsetType = _UNSET
    ping_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] | msgspec.UnsetType = _UNSET
    first_output_timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] | msgspec.UnsetType = (
        _UNSET
    )
    commit_after: Seconds | msgspec.UnsetType = _UNSET
    log_level: Literal["debug", "info", "warning", "error", "critical"] | msgspec.UnsetType = _UNSET
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] | msgspec.UnsetType = _UNSET
    auth_cooldown: Seconds | msgspec.UnsetType = _UNSET
    quota_cooldown: Seconds | msgspec.UnsetType = _UNSET
    count_tokens: Literal["auto", "upstream", "local"] | msgspec.UnsetType = _UNSET
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=2**40)] | msgspec.UnsetType = _UNSET
    # traffic control (docs/traffic-control.md): the scheduler picks these up at once
    plan: Literal["auto", "lite", "pro", "max", "payg", "unlimited"] | msgspec.UnsetType = _UNSET
    key_slots: list[Annotated[int, msgspec.Meta(ge=1, le=10_000)]] | msgspec.UnsetType = _UNSET
    max_queue_wait: Seconds | msgspec.UnsetType = _UNSET
    queue_aging: Annotated[float, msgspec.Meta(gt=0, le=86400)] | msgspec.UnsetType = _UNSET
    slot_learning: Seconds | msgspec.UnsetType = _UNSET
    # the dashboard's live inspector (docs/dashboard.md): switchable while running
    inspector: bool | msgspec.UnsetType = _UNSET


RUNTIME_FIELDS: tuple[str, ...] = ConfigUpdate.__struct_fields__
_DECODER = msgspec.json.Decoder(ConfigUpdate)


def effective_models(table: RouteTable) -> dict[str, str]:
    """Which GLM model serves Claude's opus, sonnet and haiku, plus the fallbacks."""
    out = {
        family: resolve_route(ir.Request(model=probe, messages=[]), table).model
        for family, probe in _PROBES.items()
    }
    out.update(default=table.default_model, vision=table.vision_model)
    return out


def _decode(body: bytes) -> ConfigUpdate:
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.startswith("Object contains unknown field"):
            field = text.split("`")[1] if "`" in text else "?"
            if field in Settings.__struct_fields__:
                raise ClientRequestError(
                    f"{field}: cannot be changed at runtime (restart the server with the "
                    f"new value); changeable: {', '.join(RUNTIME_FIELDS)}"
                ) from None
            raise ClientRequestError(
                f"{field}: unknown field; changeable: {', '.join(RUNTIME_FIELDS)}"
            ) from None
        # msgspec says e.g. "Expected `float` > 0.0 - at `$.ping_interval`".
        message, _, where = text.partition(" - at `$.")
        field = where.rstrip("`").replace("[...]", "") or "body"
        raise ClientRequestError(f"{field}: {message}") from None
    except msgspec.DecodeError:
        raise ClientRequestError("body: must be a JSON object") from None


def apply_update(settings: Settings, update: ConfigUpdate) -> Settings:
    """The settings after ``update``.

    Raises:
        ClientRequestError: a value is invalid (the message starts with the field name).
    """
    changes: dict[str, Any] = {
        name: getattr(update, name)
        for name in RUNTIME_FIELDS
        if getattr(update, name) is not _UNSET and name != "models"
    }
    if update.models is not _UNSET:
        merged = dict(settings.models)
        for alias, target in update.models.items():
            if target is None:
                merged.pop(alias, None)
            else:
                merged[alias] = target
        changes["models"] = merged
    if "key_slots" in changes:
        changes["key_slots"] = tuple(changes["key_slots"])
    if "upstream" in changes and changes["upstream"] not in PROFILES:
        names = ", ".join(PROFILES)
        raise ClientRequestError(
            f"upstream: must be a profile name ({names}); a custom URL needs a restart"
        )
    if "models" in changes:
        try:
            changes["models"] = convert_setting("models", changes["models"])
        except ValueError as exc:  # e.g. a target that is no GLM model
            raise ClientRequestError(f"models: {exc}") from None
    return msgspec.structs.replace(settings, **changes)


def config_view(request: Request) -> dict[str, Any]:
    """The effective configuration as JSON-ready data, secrets redacted."""
    current = record_of(request).runtime
    keys = app_state(request).key_pool
    out = current.settings.redacted()
    out["api_keys"] = {
        "count": len(keys),
        "healthy": keys.healthy_count(),
        "fingerprint": keys_fingerprint(current.settings.api_keys),
    }
    out["effective_models"] = effective_models(current.route_table)
    out["runtime_fields"] = list(RUNTIME_FIELDS)
    return out


async def get_config(request: Request) -> Response:
    """``GET /config``."""
    return JSONResponse(config_view(request))


async def post_config(request: Request) -> Response:
    """``POST /config``: validate, then swap the configuration for every client at once."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        if media_type != "application/json":
            raise ClientRequestError(
                "content-type: POST /config accepts only application/json", status_hint=415
            )
        update = _decode(await read_body(request, _MAX_CONFIG_BODY))
        state = app_state(request)
        if state.worker.count > 1:  # the change would reach one worker process of several
            raise ClientRequestError(
                f"POST /config: this server runs {state.worker.count} worker processes and "
                "a change would reach only the one that answers; change the configuration "
                "and restart the server",
                status_hint=409,
            )
        new = apply_update(state.settings, update)
        # The whole new configuration, routes included, before any of it is applied.
        table = check_settings(new)
    except GlmbridgeError as err:
        return error_response(err, request)
    except ConfigurationError as exc:  # a route of the new configuration fails
        return error_response(ClientRequestError(str(exc), path=exc.field), request)
    except ValueError as exc:  # the routing table refused the map
        return error_response(ClientRequestError(f"models: {exc}"), request)
    profile = new.upstream_profile
    catalog = build_model_catalog(offered(table, profile, live_models(state, profile)))
    # The swap: three assignments with no await in between are atomic for the event loop.
    state.settings, state.route_table, state.model_catalog = new, table, catalog
    state.metrics.models = frozenset(table.models)
    # The slots change now, not at the next upstream call: /status shows the new limits.
    state.scheduler.configure(new.slot_limits(), aging=new.queue_aging, learning=new.slot_learning)
    if new.log_level != record_of(request).settings.log_level:
        logging.getLogger("glmbridge").setLevel(new.log_level.upper())
    changed = sorted(f for f in RUNTIME_FIELDS if getattr(update, f) is not _UNSET)
    logger.info("configuration changed at runtime: %s", ", ".join(changed) or "nothing")
    record_of(request).runtime = snapshot(state)  # the answer shows the new one
    return JSONResponse(config_view(request))


routes = [
    Route("/config", get_config, methods=["GET"]),
    Route("/config", post_config, methods=["POST"]),
]
