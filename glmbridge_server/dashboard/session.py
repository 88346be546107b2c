"""Dashboard sessions: the auth token exchanged once for an ``HttpOnly`` cookie.

With ``auth_token`` set, the dashboard's login form posts the token once; a correct one
creates a session whose random id travels only in an ``HttpOnly; SameSite=Strict`` cookie,
so the token never sits in web storage, in a URL or anywhere the page's scripts can read.
The server keeps only a hash of each id, in memory (a restart logs everyone out), with a
fixed lifetime and a cap on how many exist. Failed logins are throttled for everyone, so a
guessing script gets a handful of tries a minute.

The security middleware asks :func:`has_session` whether a request carries a live session:
the cookie is then as good as the token (``SameSite=Strict`` keeps other sites from sending
it, and the Origin check refuses cross-origin calls from same-site pages).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "COOKIE",
    "LoginThrottle",
    "SessionStore",
    "cookie_value",
    "has_session",
    "token_matches",
]

#: The session cookie's name.
COOKIE = "glmbridge_session"
_LIFETIME = 7 * 86_400.0  # a phone on the LAN should not need the token every day
_MAX_SESSIONS = 64


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class SessionStore:
    """Live sessions by hashed id, each with an expiry; the oldest go past the cap."""

    def __init__(
        self, *, lifetime: float = _LIFETIME, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    def create(self) -> str:
        """A new session id (to put in the cookie; only its hash is kept)."""
        session_id = secrets.token_urlsafe(32)
        self._expiry[_digest(session_id)] = self._clock() + self.lifetime
        while len(self._expiry) > _MAX_SESSIONS:
            self._expiry.popitem(last=False)
        return session_id

    def valid(self, session_id: str | None) -> bool:
        """Whether ``session_id`` names a live session (expired ones are forgotten)."""
        if not session_id or len(session_id) > 128:
            return False
        digest = _digest(session_id)
        expiry = self._expiry.get(digest)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[digest]
            return False
        return True

    def revoke(self, session_id: str | None) -> None:
        """End a session (logout); unknown ids are ignored."""
        if session_id:
            self._expiry.pop(_digest(session_id), None)

    def __len__(self) -> int:
        return len(self._expiry)


class LoginThrottle:
    """At most ``limit`` failed logins per ``period`` seconds, counted for all clients."""

    def __init__(
        self, limit: int = 10, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.period, self._clock = limit, period, clock
        self._failures: list[float] = []

    def blocked(self) -> float:
        """Seconds until another attempt is allowed (``0.0``: now)."""
        now = self._clock()
        self._failures = [t for t in self._failures if now - t < self.period]
        if len(self._failures) < self.limit:
            return 0.0
        return self.period - (now - self._failures[0])

    def failed(self) -> None:
        """Count one failed attempt."""
        self._failures.append(self._clock())


def token_matches(presented: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return hmac.compare_digest(presented.encode(), token.encode())


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in raw ASGI headers (the first one wins)."""
    for key, raw in headers:
        if key != b"cookie":
            continue
        for part in raw.decode("latin-1").split(";"):
            cname, sep, value = part.strip().partition("=")
            if sep and cname == name:
                return value
    return None


def has_session(scope: Any) -> bool:
    """Whether an ASGI request carries a live dashboard session cookie."""
    dashboard = getattr(scope["app"].state, "dashboard", None)
    if dashboard is None:
        return False
    sessions: SessionStore = dashboard.sessions
    return sessions.valid(cookie_value(scope["headers"]))
