"""Vision that degrades gracefully: images described by a vision model, for a model that
cannot see them (:mod:`glmbridge.vision` has the rules and the texts).

Two moments:

* **Before the call** (:func:`prepare`): the routed model cannot see (history images after
  an image turn, ``route_media`` off, an ``x-glmbridge-model`` override) and the request has
  images: each is described and the request goes on as text. Today's alternative, a bare
  "[image omitted]" placeholder, loses what the image showed.
* **When the vision model fails** (:func:`fallback_for`): a turn routed to the vision model
  gets an error before any output that says the model or the image cannot be used (not in
  the plan: 1311; unknown model: 1211; a rejected image or parameter: 1210/1214; 403/404):
  the images are described by the other vision models of the table, and the turn is
  answered by the model the client asked for. A model that sees and rejects a request
  with images as invalid (1210/1214) gets the same treatment, on that model. The relay
  swaps the exchange (same message id, same client stream).

Describers are the table's ``vision_model`` then its other vision models (at most
``_MAX_DESCRIBERS``), minus one that just failed, each called once per image through the
one non-streamed driver (:meth:`~glmbridge_server.call.driver.Call.decoded`: the key pool,
retries, plan errors classified). Descriptions are cached per image content
(``_CACHE_SIZE`` images), so a history image is described once, not every turn. An image
that every describer rejects as invalid is cached as a placeholder: it no longer fails
every later turn of the session, even on a model that sees. Describing costs vision-model
calls that the client's ``usage`` does not show.
"""

from __future__ import annotations

import collections
import logging

import msgspec

from glmbridge.errors import GlmbridgeError, UpstreamError
from glmbridge.exchange import Exchange
from glmbridge.profiles import PROFILES
from glmbridge.routing import Route, resolve_route
from glmbridge.vision import (
    Description,
    FoundImage,
    describe_request,
    description_of,
    failure_reason,
    find_images,
    with_descriptions,
)
from glmbridge_server.call.driver import Call, Fallback, as_ir
from glmbridge_server.call.record import CallRecord

__all__ = ["Fallback", "fallback_for", "prepare"]

logger = logging.getLogger("glmbridge.server")

_CACHE_SIZE = 512
_MAX_DESCRIBERS = 2
#: Codes and statuses that say "this model, or this image, cannot be used here".
_VISION_CODES = frozenset({"1210", "1211", "1214", "1220", "1311"})
_VISION_STATUSES = frozenset({403, 404})
#: An image every describer rejected with these is unusable: remembered as a placeholder.
_BAD_IMAGE_CODES = frozenset({"1210", "1214"})
_REJECTED = "every vision model rejected the image as invalid"


def _enabled(record: CallRecord) -> bool:
    return bool(record.settings.describe_images)


async def prepare(record: CallRecord, exchange: Exchange) -> Exchange:
    """``exchange``, or its twin with images as text: all of them when the routed model
    cannot see, else those known to be rejected (a placeholder each)."""
    if not _enabled(record):
        return exchange
    found = find_images(exchange.request)
    if not found:
        return exchange
    if not exchange.route.spec.vision:
        return await _degrade(record, exchange, exclude=frozenset(), reroute=False)
    cache = _cache(record)
    rejected = {f.key: d for f in found if (d := cache.get(f.key)) and d.failure == _REJECTED}
    if not rejected:
        return exchange
    return _twin(record, exchange, exchange.route, rejected, only_described=True)


def fallback_for(record: CallRecord, exchange: Exchange) -> Fallback | None:
    """What to do when an exchange with images fails before any output: on a vision route,
    describe its images with another vision model and answer with the text model; on a
    model that sees, only for a rejected image (1210/1214), the same on that model
    (``None``: no images, or describing is off)."""
    if not _enabled(record) or not exchange.route.spec.vision:
        return None
    vision_route = exchange.route.reason == "vision"
    if not vision_route and not find_images(exchange.request):
        return None

    async def fall_back(err: UpstreamError) -> Exchange | None:
        if not vision_route:
            if err.code not in _BAD_IMAGE_CODES:
                return None
            logger.warning("%s rejected the request with images (%s); describing them",
                           exchange.route.model, err.message)  # fmt: skip
            return await _degrade(record, exchange, exclude=frozenset(), reroute=False)
        if err.code not in _VISION_CODES and err.status not in _VISION_STATUSES:
            return None
        logger.warning("vision model %s failed (%s); describing the images instead",
                       exchange.route.model, err.message)  # fmt: skip
        failed = frozenset({exchange.route.model})
        return await _degrade(record, exchange, exclude=failed, reroute=True, prior=err)

    return fall_back


async def _degrade(
    record: CallRecord,
    exchange: Exchange,
    *,
    exclude: frozenset[str],
    reroute: bool,
    prior: UpstreamError | None = None,
) -> Exchange:
    req = exchange.request
    images = find_images(req)
    # The failed call's error speaks for its image when there was only one (a 1210 on a
    # corrupt image counts as that describer's verdict, even with no other describer).
    if len({found.key for found in images}) != 1:
        prior = None
    descriptions: dict[str, Description] = {}
    for found in images:
        if found.key not in descriptions:
            descriptions[found.key] = await _description(record, exchange, found, exclude, prior)
    current = record.runtime
    route = exchange.route
    if reroute:  # the client's model, as routed without the images
        route = resolve_route(
            msgspec.structs.replace(req, messages=[]), current.route_table,
            upstream=current.settings.upstream_profile,
        )  # fmt: skip
    return _twin(record, exchange, route, descriptions)


def _twin(
    record: CallRecord,
    exchange: Exchange,
    route: Route,
    descriptions: dict[str, Description],
    *,
    only_described: bool = False,
) -> Exchange:
    """The exchange with its images replaced (same door, message id, callbacks)."""
    text_req = with_descriptions(exchange.request, descriptions, reader=route.model,
                                 only_described=only_described)  # fmt: skip
    estimator = record.app.token_estimator
    twin = Exchange(exchange.door, text_req, route,
                    input_estimate=estimator.request_tokens(text_req),
                    message_id=exchange.message_id)  # fmt: skip
    twin.secrets = exchange.secrets
    twin.on_complete = exchange.on_complete
    record.routed_model = route.model
    return twin


def _cache(record: CallRecord) -> collections.OrderedDict[str, Description]:
    app = record.app
    cache = app.image_descriptions
    if cache is None:
        cache = app.image_descriptions = collections.OrderedDict()
    return cache


async def _description(
    record: CallRecord,
    exchange: Exchange,
    found: FoundImage,
    exclude: frozenset[str],
    prior: UpstreamError | None = None,
) -> Description:
    cache = _cache(record)
    known = cache.get(found.key)
    if known is not None:
        cache.move_to_end(found.key)
        return known
    current = record.runtime
    table = current.route_table
    profile = current.settings.upstream_profile
    serving = PROFILES[profile.media_profile] if profile.media_profile else profile
    candidates = [table.vision_model, *(m for m, s in table.models.items() if s.vision)]
    # Only models the upstream serves: on the Coding Plan another vision model is a 400.
    models = [m for m in dict.fromkeys(candidates) if m not in exclude and serving.serves(m)]
    models = models[:_MAX_DESCRIBERS]
    prior_model = exchange.route.model
    failures: list[tuple[str, GlmbridgeError]] = [(prior_model, prior)] if prior else []
    for model in models:
        try:
            text = await _describe(record, exchange, found, model)
        except GlmbridgeError as err:
            logger.warning("describing an image with %s failed: %s", model, err.message)
            failures.append((model, err))
            continue
        if text is not None:
            return _remember(cache, found.key, Description(text, describer=model))
    # Remembered only on a describer's own verdict: its request holds nothing but the
    # image, so a 1210 there is about the image. The failed turn's error (``prior``) may be
    # about any part of that request, and is never taken for a verdict on the image alone.
    bad = len(failures) > (prior is not None) and all(
        isinstance(e, UpstreamError) and e.code in _BAD_IMAGE_CODES for _, e in failures
    )
    if bad:  # an image no model accepts: a placeholder from now on
        return _remember(cache, found.key, Description(None, failure=_REJECTED))
    return Description(None, failure=failure_reason(failures, tried=bool(models)))


def _remember(
    cache: collections.OrderedDict[str, Description], key: str, value: Description
) -> Description:
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


async def _describe(
    record: CallRecord, exchange: Exchange, found: FoundImage, model: str
) -> str | None:
    """One non-streamed call asking ``model`` to describe one image."""
    current = record.runtime
    profile = current.settings.upstream_profile
    ask = describe_request(exchange.request, found, model)
    route = resolve_route(ask, current.route_table, upstream=profile)
    if profile.media_profile is not None:  # images go to the profile's media upstream
        route = msgspec.structs.replace(route, upstream=PROFILES[profile.media_profile])
    call = Call(record, Exchange(exchange.door, ask, route))
    return description_of(await call.decoded(as_ir, answers=False))
