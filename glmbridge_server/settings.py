"""Server configuration: command line, environment, TOML file and ``.env`` → one :class:`Settings`.

Precedence, highest first::

    command-line flags > environment > TOML config file > .env (working directory) > defaults

Every setting has one name (the TOML key). Its environment variable is ``GLMBRIDGE_<NAME>``
in upper case, except the API keys, which come from ``ZAI_API_KEY`` (comma-separated = a key
pool). Values are validated once, here; an invalid value raises :class:`SettingsError` naming
the key and the source it came from (never the value of a secret).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from glmbridge.profiles import PROFILES, UpstreamProfile, profile_for
from glmbridge_server.settings_check import ConfigurationError, check_settings, route_table

__all__ = [
    "Settings",
    "convert_setting",
    "key_warnings",
    "SettingsError",
    "load_settings",
    "parse_dotenv",
    "redact_url",
    "route_table",
]

# The built-in simulator is mounted here in ``--mock`` mode; a profile's base URL path is
# appended (``/_mock/api/coding/paas/v4``, ``/_mock/api/anthropic``).
MOCK_MOUNT = "/_mock"
MOCK_API_KEY = "mock-key.not-a-secret"

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_SECRET_FIELDS = frozenset({"api_keys", "media_api_keys", "auth_token", "redis_url"})


class SettingsError(Exception):
    """A configuration value is invalid; the message names the key and its source."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The effective server configuration (immutable).

    ``repr()`` redacts the API keys and the auth token; use :meth:`redacted` for a
    loggable/serialisable view.
    """

    host: str = "127.0.0.1"
    port: int = 4567
    upstream: str = "zai-coding"
    api_keys: tuple[str, ...] = ()
    auth_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    connect_timeout: float = 10.0
    upstream_connections: int = 200
    pool_timeout: float = 1.0
    idle_timeout: float = 300.0
    first_output_timeout: float = 300.0
    commit_after: float = 5.0
    max_retries: int = 2
    max_body_bytes: int = 50 * 1024 * 1024
    max_json_objects: int = 100_000
    video_dirs: tuple[str, ...] = ()
    video_max_bytes: int = 20 * 1024 * 1024
    max_connections: int = 1024
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 15.0
    ping_interval: float = 10.0
    auth_cooldown: float = 300.0
    quota_cooldown: float = 60.0
    plan: Literal["auto", "lite", "pro", "max", "payg", "unlimited"] = "auto"
    key_slots: tuple[int, ...] = ()
    max_queue_wait: float = 120.0
    queue_aging: float = 30.0
    slot_learning: float = 300.0
    redis_url: str = ""
    workers: int = 1
    workers_local_state: bool = False
    quota_poll: float = 0.0
    background_throttle: float = 90.0
    models: dict[str, str] = {}
    upstreams: dict[str, str] = {}
    fallbacks: dict[str, tuple[str, ...]] = {}
    thinking: Literal["auto", "enabled", "disabled"] = "auto"
    count_tokens: Literal["auto", "upstream", "local"] = "auto"
    responses_store: int = 0
    web_search_engine: str = ""
    web_search_url: str = ""
    web_search_cache_ttl: float = 600.0
    web_fetch_allow_private: bool = False
    web_fetch_max_bytes: int = 2 * 1024 * 1024
    describe_images: bool = True
    responses_web_search: bool = False
    usage_store: bool = True
    data_dir: str = ""
    usage_retention_days: int = 90
    # media (issue 21): pay-as-you-go keys and upstream for image/video generation
    media_api_keys: tuple[str, ...] = ()
    media_upstream: str = ""
    models_refresh: float = -1.0
    upstream_protocol: Literal["openai", "anthropic"] = "openai"
    reasoning_content: bool = True
    inspector: bool = False
    mock: bool = False
    #: Where each value came from (``field -> "environment (GLMBRIDGE_PORT)"``, …); a field
    #: missing here has its default. Filled by :func:`load_settings`; never a setting itself.
    sources: dict[str, str] = {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({fields})"

    __str__ = __repr__

    def redacted(self) -> dict[str, Any]:
        """All settings as builtins, with secrets replaced by a count or ``"***"``."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        del out["sources"]
        out["api_keys"] = f"<{len(self.api_keys)} key(s)>"
        out["media_api_keys"] = f"<{len(self.media_api_keys)} key(s)>"
        out["media_upstream"] = redact_url(self.media_upstream)
        out["auth_token"] = "***" if self.auth_token else None
        out["upstream"] = redact_url(self.upstream)
        out["redis_url"] = redact_url(self.redis_url) if self.redis_url else ""
        return out

    @property
    def upstream_profile(self) -> UpstreamProfile:
        """The upstream profile: a built-in one, or a base URL speaking ``upstream_protocol``
        (``anthropic``: Anthropic Messages, with every normalisation of ``zai-anthropic``,
        e.g. a corporate relay in front of Z.ai's Anthropic endpoint)."""
        if self.upstream in PROFILES:
            return PROFILES[self.upstream]
        return profile_for(self.upstream, protocol=self.upstream_protocol)

    @property
    def upstream_base_url(self) -> str:
        """The profile's base URL (the codec's path is appended to it)."""
        return self.upstream_profile.base_url

    @property
    def upstream_name(self) -> str:
        """A secret-free label of the upstream: the profile name, or the URL's host."""
        if self.mock:
            return "mock"
        return self.upstream_profile.name

    @property
    def effective_plan(self) -> str:
        """``plan``, with ``auto`` resolved from the upstream: a Coding Plan or Anthropic
        profile is ``pro``, Z.ai's general endpoint ``payg``, a custom URL ``unlimited``."""
        if self.plan != "auto":
            return self.plan
        if self.upstream not in PROFILES:
            return "unlimited"
        return "payg" if self.upstream in ("zai", "bigmodel") else "pro"

    def slot_limits(self) -> list[int]:
        """Upstream slots per key: ``key_slots`` (one value for every key, or one per key
        in order; keys beyond the list get the plan's default), else the plan's default."""
        from glmbridge_server.traffic.scheduler import PLAN_SLOTS

        default = PLAN_SLOTS[self.effective_plan]
        given = self.key_slots
        if len(given) == 1:
            return [given[0]] * len(self.api_keys)
        return [given[i] if i < len(given) else default for i in range(len(self.api_keys))]

    @property
    def usage_db(self) -> Path | None:
        """The usage database file, or ``None`` when usage is not recorded (``--mock``
        traffic is not usage)."""
        if not self.usage_store or self.mock:
            return None
        from glmbridge_server.traffic.usage_store import default_data_dir

        base = Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()
        return base / "usage.sqlite3"

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` is a loopback address (or ``localhost``)."""
        return _is_loopback(self.host)

    @property
    def is_wildcard(self) -> bool:
        """Whether ``host`` means "every interface" (``0.0.0.0``, ``::``)."""
        return self.host.strip("[]") in ("0.0.0.0", "::", "")


# --- conversion of raw values (strings from env/CLI, typed values from TOML) ----------------


def _to_str(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if "\0" in value:  # no host, path or name holds one (a path with one kills a thread)
        raise ValueError("must not contain a NUL character")
    return value.strip()


def _to_int(lo: int, hi: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        try:
            number = int(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise ValueError("must be an integer") from None
        if not isinstance(number, int) or not lo <= number <= hi:
            raise ValueError(f"must be an integer between {lo} and {hi}")
        return number

    return convert


def _to_seconds(value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number of seconds")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError("must be a positive number of seconds")
    return number


def _to_refresh(value: object) -> float:
    """``auto`` (every six hours, off under ``--mock``: stored as -1), or seconds (0: off)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return -1.0
    return _to_seconds(value, allow_zero=True)


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _to_choice(*choices: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text == "warn" and "warning" in choices:
            text = "warning"
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return convert


def _to_upstream(value: object) -> str:
    text = _to_str(value)
    if text in PROFILES:
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        names = ", ".join(PROFILES)
        raise ValueError(f"must be a profile name ({names}) or an http(s) base URL")
    if "@" in parts.netloc:
        # user:pass@ would be sent as Basic auth in place of the Bearer key, and shown in logs.
        raise ValueError(
            "must not contain credentials (user:password@); set the API key with ZAI_API_KEY"
        )
    base = text.rstrip("/")
    # Forgive a full endpoint URL: the base is what the server appends paths to.
    return base.removesuffix("/chat/completions").removesuffix("/v1/messages")


def _to_media_upstream(value: object) -> str:
    """``zai``, ``bigmodel``, an http(s) base URL, or empty (the main upstream's region)."""
    text = _to_str(value).strip()
    if text in ("", "zai", "bigmodel"):
        return text
    if text in PROFILES:
        raise ValueError("must be zai or bigmodel (media is pay-as-you-go) or a base URL")
    return _to_upstream(text)


def _to_keys(value: object) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = list(value.split(","))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError("must be a comma-separated string or a list of strings")
    keys: list[str] = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise ValueError(f"key #{number} is not a string")
        key = item.strip()
        if not key:
            continue
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise ValueError(f"key #{number} contains whitespace or control characters")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def _to_slots(value: object) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    convert = _to_int(1, 10_000)
    return tuple(convert(item) for item in items)


def _to_percent(value: object) -> float:
    number = _to_seconds(value, allow_zero=True)
    if number > 100:
        raise ValueError("must be a percentage between 0 and 100")
    return number


def _to_redis_url(value: object) -> str:
    text = _to_str(value)
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return text


def _to_secret(value: object) -> str:
    text = _to_str(value)
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ValueError("contains whitespace or control characters")
    return text


def _to_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError("must be a comma-separated string or a list of strings")


def _to_unique(normalise: Callable[[str], str]) -> Callable[[object], tuple[str, ...]]:
    """A list setting: each item normalised (``ValueError`` names a bad one), in order,
    each kept once."""

    def convert(value: object) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalise(item) for item in _to_list(value)))

    return convert


def _dir(item: str) -> str:
    path = os.path.expanduser(item)
    if not os.path.isabs(path):
        raise ValueError(f"{item!r} is not an absolute directory path")
    return path


def _host(item: str) -> str:
    host = item.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host != "*" and not all(ch.isalnum() or ch in "-._:" for ch in host):
        raise ValueError(f"{item!r} is not a host name or address (no scheme, port or path)")
    return host


def _origin(item: str) -> str:
    origin = item.lower().rstrip("/")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ValueError(f"{item!r} is not an origin like https://app.example:8443")
    return origin


def keys_fingerprint(keys: tuple[str, ...]) -> str | None:
    """A short one-way fingerprint of a key set (order-insensitive), ``None`` for no keys.

    It tells two key sets apart (the launcher uses it to notice a server still holding old
    keys) and reveals nothing about them: 64 bits of a SHA-256 of high-entropy secrets.
    """
    if not keys:
        return None
    data = "\n".join(sorted(keys)).encode()
    return hashlib.sha256(b"glmbridge-keys\0" + data).hexdigest()[:16]


# What other providers' keys start with; a Z.ai key is "<32 hex digits>.<16 characters>".
_FOREIGN_KEYS = (("sk-ant-", "an Anthropic"), ("sk-", "an OpenAI-style"), ("AIza", "a Google"))


def key_warnings(keys: tuple[str, ...]) -> list[str]:
    """A warning for each key that cannot be a Z.ai key (never the key itself)."""
    out = []
    for n, key in enumerate(keys, start=1):
        kind = next((k for prefix, k in _FOREIGN_KEYS if key.startswith(prefix)), None)
        if kind is not None:
            which = f"key {n} of {len(keys)}" if len(keys) > 1 else "the key"
            out.append(
                f"warning: ZAI_API_KEY: {which} looks like {kind} key, not a Z.ai one "
                "(Z.ai will answer 401); get one at https://z.ai/manage-apikey/apikey-list"
            )
    return out


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _table(
    value: object, looks_like: str, table_of: str, entry: Callable[[str], object]
) -> dict[Any, object]:
    """A TOML table as it is, or the environment's ``name=…,name=…`` read into one (each
    name stripped, what follows its ``=`` read by ``entry``); the entries are not checked."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a table of {table_of}")
    table: dict[Any, object] = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        name, sep, rest = item.partition("=")
        if not sep:
            raise ValueError(f"must look like {looks_like}")
        table[name.strip()] = entry(rest)
    return table


def _to_pairs(value: object, key: str, target: str) -> dict[str, str]:
    """A ``key = target`` table (TOML) or ``key=target,key=target`` (environment)."""
    pairs = _table(value, f"{key}={target},{key}={target}", f"{key} = {target}", str.strip)
    out: dict[str, str] = {}
    for name, dest in pairs.items():
        if not isinstance(dest, str) or not dest.strip() or not name:
            raise ValueError(f"entry {name!r} must map to a non-empty {target} string")
        out[str(name).strip()] = dest.strip()
    return out


def _to_models(value: object) -> dict[str, str]:
    # environment form: "opus=glm-5.1,sonnet=glm-4.7"
    out = _to_pairs(value, "alias", "model id")
    route_table(out)  # validates the targets (ValueError names the entry)
    return out


def _to_upstreams(value: object) -> dict[str, str]:
    # environment form: "glm-4.5-air=zai-coding"
    out = _to_pairs(value, "model", "profile")
    route_table({}, out)  # validates the profile names (ValueError names the entry)
    return out


def _to_fallbacks(value: object) -> dict[str, tuple[str, ...]]:
    """``{"glm-5.3": ["glm-5.2", "glm-4.7"], "zai-coding": "zai"}`` (TOML; a string value is
    comma-separated) or ``glm-5.3=glm-5.2>glm-4.7,zai-coding=zai`` (environment)."""
    table = _table(
        value,
        "model=fallback>fallback,profile=profile",
        "model or profile = list of fallbacks",
        lambda targets: targets.split(">"),
    )
    out: dict[str, tuple[str, ...]] = {}
    for name, raw in table.items():
        items: object = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(t, str) for t in items):
            raise ValueError(f"entry {name!r} must be a list of model ids or profile names")
        chain = tuple(str(t).strip() for t in items if str(t).strip())
        key = str(name).strip()
        if not key or not chain:
            raise ValueError(f"entry {name!r} needs at least one fallback")
        if key in PROFILES:
            unknown = [t for t in chain if t not in PROFILES]
            if unknown:
                raise ValueError(f"entry {key!r}: {unknown[0]!r} is not a profile name")
        out[key] = chain
    return out


_CONVERTERS: dict[str, Callable[[object], Any]] = {
    "host": _to_str,
    "port": _to_int(0, 65535),
    "upstream": _to_upstream,
    "api_keys": _to_keys,
    "auth_token": _to_secret,
    "allowed_hosts": _to_unique(_host),
    "allowed_origins": _to_unique(_origin),
    "log_level": _to_choice(*_LOG_LEVELS),
    "log_format": _to_choice("text", "json"),
    "connect_timeout": _to_seconds,
    "upstream_connections": _to_int(1, 100_000),
    "pool_timeout": _to_seconds,
    "idle_timeout": _to_seconds,
    "first_output_timeout": _to_seconds,
    "commit_after": lambda v: _to_seconds(v, allow_zero=True),
    "max_retries": _to_int(0, 10),
    "max_body_bytes": _to_int(1024, 2**40),
    "max_json_objects": _to_int(100, 100_000_000),
    "video_dirs": _to_unique(_dir),
    "video_max_bytes": _to_int(1024, 2**31),
    "max_connections": _to_int(8, 1_000_000),
    "max_header_bytes": _to_int(4096, 16 * 1024 * 1024),
    "header_timeout": _to_seconds,
    "body_timeout": _to_seconds,
    "keepalive_timeout": _to_seconds,
    "ping_interval": _to_seconds,
    "auth_cooldown": lambda v: _to_seconds(v, allow_zero=True),
    "quota_cooldown": lambda v: _to_seconds(v, allow_zero=True),
    "plan": _to_choice("auto", "lite", "pro", "max", "payg", "unlimited"),
    "key_slots": _to_slots,
    "max_queue_wait": lambda v: _to_seconds(v, allow_zero=True),
    "queue_aging": _to_seconds,
    "slot_learning": lambda v: _to_seconds(v, allow_zero=True),
    "redis_url": _to_redis_url,
    "workers": _to_int(1, 64),
    "workers_local_state": _to_bool,
    "quota_poll": lambda v: _to_seconds(v, allow_zero=True),
    "background_throttle": _to_percent,
    "models": _to_models,
    "upstreams": _to_upstreams,
    "fallbacks": _to_fallbacks,
    "thinking": _to_choice("auto", "enabled", "disabled"),
    "count_tokens": _to_choice("auto", "upstream", "local"),
    "responses_store": _to_int(0, 1_000_000),
    "web_search_engine": _to_str,
    "web_search_url": lambda v: _to_upstream(v) if str(v).strip() else "",
    "web_search_cache_ttl": lambda v: _to_seconds(v, allow_zero=True),
    "web_fetch_allow_private": _to_bool,
    "web_fetch_max_bytes": _to_int(1024, 100 * 1024 * 1024),
    "describe_images": _to_bool,
    "responses_web_search": _to_bool,
    "usage_store": _to_bool,
    "data_dir": _to_str,
    "usage_retention_days": _to_int(1, 36_500),
    "media_api_keys": _to_keys,
    "media_upstream": _to_media_upstream,
    "models_refresh": _to_refresh,
    "upstream_protocol": _to_choice("openai", "anthropic"),
    "reasoning_content": _to_bool,
    "inspector": _to_bool,
    "mock": _to_bool,
}


def convert_setting(name: str, value: object) -> Any:
    """Validate one setting value given as in the TOML file; ``ValueError`` says why not."""
    return _CONVERTERS[name](value)


_ENV_NAMES = {"api_keys": "ZAI_API_KEY", "media_api_keys": "ZAI_MEDIA_API_KEY"}


def _env_name(field: str) -> str:
    return _ENV_NAMES.get(field) or f"GLMBRIDGE_{field.upper()}"


# --- sources ---------------------------------------------------------------------------------

_Layer = dict[str, tuple[object, str]]  # field -> (raw value, human-readable source)


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``export`` prefix, ``#`` comments, quotes."""
    out: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    return out


def _env_layer(env: Mapping[str, str], label: str) -> _Layer:
    layer: _Layer = {}
    for field in _CONVERTERS:
        name = _env_name(field)
        value = env.get(name)
        if value is not None and value.strip():  # an empty variable counts as unset
            layer[field] = (value, f"{label} ({name})")
    return layer


def _read_toml(path: Path) -> _Layer:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_CONVERTERS))
    if unknown:
        known = ", ".join(_CONVERTERS)
        raise SettingsError(
            f"config file {path}: unknown key(s) {', '.join(unknown)} (known: {known})"
        )
    return {key: (value, f"config file {path} ({key})") for key, value in data.items()}


def _convert(layers: list[_Layer]) -> dict[str, Any]:
    merged: _Layer = {}
    for layer in layers:  # lowest precedence first
        merged.update(layer)
    values: dict[str, Any] = {"sources": {field: source for field, (_, source) in merged.items()}}
    for field, (raw, source) in merged.items():
        try:
            values[field] = _CONVERTERS[field](raw)
        except ValueError as exc:
            if field == "upstream" and isinstance(raw, str):
                raw = redact_url(raw)  # user:password@ must not reach the terminal either
            shown = "" if field in _SECRET_FIELDS else f" = {raw!r}"
            raise SettingsError(f"invalid {field}{shown} from {source}: {exc}") from None
    return values


def load_settings(
    cli: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Settings:
    """Build the effective settings from all sources.

    Parameters:
        cli: values given on the command line, by setting name (``None`` values are ignored);
            ``config`` is the path of a TOML file.
        environ: the environment (default ``os.environ``).
        cwd: the directory whose ``.env`` is read (default the working directory).

    Raises:
        SettingsError: a value is invalid, or the config file is missing or malformed.
    """
    environ = os.environ if environ is None else environ
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    dotenv_path = Path(cwd if cwd is not None else Path.cwd()) / ".env"
    try:
        dotenv = parse_dotenv(dotenv_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        dotenv = {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{dotenv_path} cannot be read: {exc}") from None

    config = (
        cli.pop("config", None) or environ.get("GLMBRIDGE_CONFIG") or dotenv.get("GLMBRIDGE_CONFIG")
    )
    toml_layer = _read_toml(Path(str(config)).expanduser()) if config else {}
    unknown = sorted(set(cli) - set(_CONVERTERS))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}")
    cli_layer: _Layer = {k: (v, f"command line (--{k.replace('_', '-')})") for k, v in cli.items()}
    layers = [
        _env_layer(dotenv, f".env file {dotenv_path}"),
        toml_layer,
        _env_layer(environ, "environment"),
        cli_layer,
    ]
    settings = Settings(**_convert(layers))
    try:  # values that are each valid may still not work together (a route)
        check_settings(settings)
    except ConfigurationError as exc:
        raise SettingsError(str(exc)) from None
    return settings


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
