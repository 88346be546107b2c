"""Which key and which upstream serve media, and the media wing's per-app state.

Media is pay-as-you-go only: a Coding Plan key gets 429/1113 on Z.ai's media APIs, and the
plan's usage policy restricts "requests clearly unrelated to coding scenarios"
(docs.z.ai/devpack/usage-policy). So the keys are ``ZAI_MEDIA_API_KEY`` (their own pool),
or the main keys when the main upstream is itself pay-as-you-go (``zai``, ``bigmodel``,
``plan = "payg"``); a plan key is never sent. The upstream is ``media_upstream`` (``zai``,
``bigmodel`` or a base URL), by default the pay-as-you-go API of the main upstream's region
(a custom URL with ``/coding/`` in its path loses that part). In ``--mock`` mode the
simulator under ``/_mock`` serves media with no key needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from glmbridge.errors import ClientRequestError, ErrorKind
from glmbridge.profiles import PROFILES
from glmbridge_server.media.tasks import TaskTable
from glmbridge_server.settings import MOCK_API_KEY, MOCK_MOUNT, Settings
from glmbridge_server.upstream.keypool import KeyPool

__all__ = ["MediaAccess", "MediaState", "media_access", "no_media_key"]

NO_KEY = (
    "image and video generation need a Z.ai pay-as-you-go API key: set ZAI_MEDIA_API_KEY "
    "(Coding Plan keys are refused by Z.ai's media APIs, and the plan is for coding); "
    "nothing was sent upstream"
)


@dataclass(frozen=True, slots=True)
class MediaAccess:
    """Where media requests go and with which keys."""

    base_url: str
    keys: tuple[str, ...]
    label: str


def no_media_key() -> ClientRequestError:
    """The 403 a media request gets when no pay-as-you-go key is configured."""
    return ClientRequestError(NO_KEY, kind=ErrorKind.PERMISSION)


def _payg_main(settings: Settings) -> bool:
    return settings.upstream in ("zai", "bigmodel") or settings.plan == "payg"


def _default_base(settings: Settings) -> str:
    if settings.upstream.startswith("bigmodel"):
        return PROFILES["bigmodel"].base_url
    if settings.upstream in PROFILES:
        return PROFILES["zai"].base_url
    profile = settings.upstream_profile
    if profile.protocol != "openai":
        return PROFILES["zai"].base_url
    return profile.base_url.replace("/coding/", "/", 1)


def media_access(settings: Settings, server: tuple[str, int] | None = None) -> MediaAccess | None:
    """The media upstream and keys for ``settings``; ``None`` when no key may serve media.
    ``server`` is this server's address (``--mock`` calls its own simulator)."""
    if settings.mock:
        host, port = server or ("127.0.0.1", settings.port)
        host = f"[{host}]" if ":" in host else host
        keys = settings.media_api_keys or (settings.auth_token or MOCK_API_KEY,)
        return MediaAccess(f"http://{host}:{port}{MOCK_MOUNT}/api/paas/v4", keys, "mock")
    keys = settings.media_api_keys or (settings.api_keys if _payg_main(settings) else ())
    if not keys:
        return None
    chosen = settings.media_upstream
    if chosen in ("zai", "bigmodel"):
        base = PROFILES[chosen].base_url
    else:
        base = chosen or _default_base(settings)
    label = chosen if chosen in ("zai", "bigmodel") else base.split("//", 1)[-1].split("/")[0]
    return MediaAccess(base.rstrip("/"), keys, label)


@dataclass
class MediaState:
    """The media wing's state on one app: the key pool of the current keys and the video
    task table (kept across configuration changes while the keys stay)."""

    keys: tuple[str, ...] = ()
    pool: KeyPool = field(default_factory=lambda: KeyPool(()))
    tasks: TaskTable = field(default_factory=TaskTable)

    def pool_for(self, keys: tuple[str, ...]) -> KeyPool:
        """The pool of ``keys`` (a new one when the configured keys changed)."""
        if keys != self.keys:
            self.keys, self.pool = keys, KeyPool(keys)
        return self.pool
