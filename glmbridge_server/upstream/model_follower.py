"""Follow Z.ai by itself: what each profile lists, and which model really answers each id.

Z.ai changed its Coding Plan under its users in September 2026 (legacy ids answered by
GLM-5.3 or GLM-5.3-Flash: https://docs.bigmodel.cn/cn/coding-plan/overview, quoted in
earendil-works/pi#9616). Two things keep the bridge current without a release:

* **What answers.** Every answer names the model that served it (``model``; a live check:
  anomalyco/models.dev PR#7331). :func:`note_served` records it for the access log, the
  metrics, ``/status`` and the usage store, and when it names another model than the id
  sent, remembers that per profile (:class:`glmbridge.served.ServedAs`, in memory and in
  ``<data dir>/served_models.json``), logs it once, and the router applies the serving
  model's spec from then on.
* **What is listed.** :func:`follow_models` reads ``GET {base}/models`` on each profile in
  use at start and every ``models_refresh`` seconds (off under ``--mock`` unless asked),
  prunes or extends what the model lists offer (:func:`glmbridge.routing.offered`) and logs
  what changed. It never delays start-up or a request; a failure is a debug line. With a
  shared state backend (Redis), one instance (or worker process) reads the lists per round
  and the others adopt what it published.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import msgspec

from glmbridge.profiles import UpstreamProfile, profile_for
from glmbridge.routing import RouteTable, offered
from glmbridge.served import ServedAs, listed_models
from glmbridge_server.settings import MOCK_API_KEY, Settings
from glmbridge_server.traffic.usage_store import default_data_dir, key_id

__all__ = [
    "LEARNED_FILE",
    "follow_models",
    "learned_store",
    "live_models",
    "models_url",
    "note_served",
    "refresh_interval",
]

logger = logging.getLogger("glmbridge.models")

LEARNED_FILE = "served_models.json"
_TIMEOUT = httpx2.Timeout(10.0)
_DEFAULT_REFRESH = 6 * 3600.0
_ROUND = "models"  # the shared round's name (Redis: one instance reads the lists for all)
_FOLLOW_EVERY = 30.0  # seconds between two looks at the lists another instance read


def _learned_path(settings: Settings) -> Path | None:
    if settings.mock:  # the simulator's answers teach nothing about Z.ai
        return None
    base = Path(settings.data_dir).expanduser() if settings.data_dir else default_data_dir()
    return base / LEARNED_FILE


def learned_store(settings: Settings) -> ServedAs:
    """What earlier runs learned (nothing under ``--mock`` or when the file is unreadable)."""
    path = _learned_path(settings)
    if path is None:
        return ServedAs()
    try:
        return ServedAs.from_json(path.read_bytes())
    except OSError:
        return ServedAs()


def note_served(state: Any, record: Any, served: str | None) -> None:
    """Record the model an answer named (``record.served_model``, a
    :class:`~glmbridge_server.call.record.CallRecord`) and learn from it."""
    if not served:
        return
    record.served_model = served
    requested, profile = record.routed_model, record.upstream
    learned: ServedAs | None = getattr(state, "served_as", None)
    if learned is None or not isinstance(requested, str) or not isinstance(profile, str):
        return
    if not learned.learn(profile, requested, served):
        return
    if served != requested:
        logger.info("%s answers %s with %s: using %s's spec for it from now on",
                    profile, requested, served, served)  # fmt: skip
    settings: Settings | None = getattr(state, "settings", None)
    path = _learned_path(settings) if settings is not None else None
    if path is None:
        return
    # Rare (news only) and small: written at once, through a file of this process's own and
    # a rename, so that another worker process reading or writing it never sees half a file.
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(msgspec.json.encode(learned.to_builtins()))
        os.replace(partial, path)
    except OSError as exc:
        logger.debug("could not save %s: %s", path, exc)
        partial.unlink(missing_ok=True)


def refresh_interval(settings: Settings) -> float:
    """Seconds between two reads of the model lists; 0: never (``models_refresh``: negative
    means "auto", six hours, off under ``--mock``)."""
    if settings.models_refresh >= 0:
        return settings.models_refresh
    return 0.0 if settings.mock else _DEFAULT_REFRESH


def models_url(profile: UpstreamProfile) -> str:
    """The model list of ``profile``: ``{base}/models`` (``{base}/v1/models`` on the
    Anthropic protocol)."""
    suffix = "/v1/models" if profile.protocol == "anthropic" else "/models"
    return profile.base_url.rstrip("/") + suffix


def _profiles(settings: Settings, table: RouteTable) -> list[UpstreamProfile]:
    main = settings.upstream_profile
    out = [main]
    names = [*table.upstreams.values(), *((main.media_profile,) if main.media_profile else ())]
    for name in names:
        profile = profile_for(name)
        if all(p.name != profile.name for p in out):
            out.append(profile)
    return out


def live_models(state: Any, profile: UpstreamProfile) -> frozenset[str] | None:
    """What ``profile``'s own list named at the last read (``None``: not read)."""
    live: dict[str, frozenset[str]] = getattr(state, "live_models", {})
    return live.get(profile.name)


async def _read(
    http: httpx2.AsyncClient, profile: UpstreamProfile, key: str, mock: bool
) -> frozenset[str]:
    url = models_url(profile)
    if mock:  # the simulator mounted in this very app (an in-process client of it)
        url = f"http://mock{urlsplit(url).path}"
    response = await http.get(url, headers=profile.auth_headers(key), timeout=_TIMEOUT)
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code}")
    ids = listed_models(response.content)
    if not ids:
        raise ValueError("not a model list")
    return ids


#: Builds the ``/v1/models`` catalog of a table (the Anthropic door's).
Catalog = Callable[[RouteTable], dict[str, dict[str, Any]]]


async def refresh_once(state: Any, http: httpx2.AsyncClient, catalog: Catalog) -> None:
    """Read every profile's list once and rebuild the model catalog if anything changed."""
    settings: Settings = state.settings
    key = settings.api_keys[0] if settings.api_keys else MOCK_API_KEY
    live: dict[str, frozenset[str]] = dict(getattr(state, "live_models", {}))
    changed = False
    for profile in _profiles(settings, state.route_table):
        try:
            ids = await _read(http, profile, key, settings.mock)
        except (httpx2.HTTPError, ValueError) as exc:
            logger.debug("model list of %s not read: %s", profile.name, exc)
            continue
        before = live.get(profile.name)
        if ids != before:
            if before is not None:
                logger.info("%s now lists %s (new: %s; gone: %s)", profile.name,
                            ", ".join(sorted(ids)), ", ".join(sorted(ids - before)) or "none",
                            ", ".join(sorted(before - ids)) or "none")  # fmt: skip
            else:
                logger.info("%s lists %s", profile.name, ", ".join(sorted(ids)))
            live[profile.name], changed = ids, True
    if changed:
        _apply(state, live, catalog)


def _apply(state: Any, live: dict[str, frozenset[str]], catalog: Catalog) -> None:
    """Serve what the lists name: the live lists and the model catalog built from them."""
    state.live_models = live
    profile = state.settings.upstream_profile
    state.model_catalog = catalog(offered(state.route_table, profile, live.get(profile.name)))


def _round(state: Any) -> str:
    """The shared round's name: instances that read the same profiles share one."""
    names = ",".join(p.name for p in _profiles(state.settings, state.route_table))
    return f"{_ROUND}:{key_id(names)}"


def _encode(live: dict[str, frozenset[str]]) -> str:
    return msgspec.json.encode({name: sorted(ids) for name, ids in live.items()}).decode()


def _adopt(state: Any, news: str | None, catalog: Catalog) -> None:
    """Take the model lists another instance read (``news``), when they differ."""
    if not news:
        return
    live = {
        name: frozenset(ids)
        for name, ids in msgspec.json.decode(news, type=dict[str, list[str]]).items()
    }
    if live != getattr(state, "live_models", {}):
        _apply(state, live, catalog)


async def follow_models(state: Any, http: httpx2.AsyncClient, catalog: Catalog) -> None:
    """Read the model lists at start and every :func:`refresh_interval` seconds (a task of
    the app's lifespan; returns at once when following is off). ``catalog`` rebuilds the
    ``/v1/models`` catalog from a table."""
    interval = refresh_interval(state.settings)
    if interval <= 0:
        return
    if state.settings.mock:
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=state.simulator))
    try:
        while True:
            remote = getattr(state.scheduler, "remote", None)
            shared = _round(state)
            try:
                if remote is None or await remote.lead(shared, interval):
                    await refresh_once(state, http, catalog)
                    if remote is not None:
                        await remote.publish(shared, _encode(state.live_models), 2 * interval)
                else:  # another instance (worker) reads the lists this round: adopt them
                    _adopt(state, await remote.news(shared), catalog)
            except Exception as exc:  # never let a bad answer end the task or the server
                logger.debug("model lists not refreshed: %s", exc)
            await anyio.sleep(interval if remote is None else min(interval, _FOLLOW_EVERY))
    finally:
        if state.settings.mock:
            with anyio.CancelScope(shield=True):
                await http.aclose()
