"""Upstream client: retry policy, Retry-After, key failover and error mapping (MockTransport)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx2
import pytest

from glmbridge.errors import (
    ErrorKind,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from glmbridge.profiles import profile_for
from glmbridge.protocols import openai
from glmbridge.transport.boundary import parse_retry_after, retry_after_from
from glmbridge_server.settings import Settings
from glmbridge_server.upstream.client import (
    BACKOFF_CAP,
    UpstreamClient,
    backoff_delay,
)
from glmbridge_server.upstream.keypool import KeyPool

OK_BODY = b'{"id":"x","choices":[]}'
BASE = "https://glm.test/api/paas/v4"
PROFILE = profile_for(BASE)


def glm_error(status: int, code: str, message: str = "m", **headers: str) -> httpx2.Response:
    body = {"error": {"code": code, "message": message}}
    return httpx2.Response(status, json=body, headers=headers)


class Harness:
    """An UpstreamClient over a scripted MockTransport; records requests and sleeps."""

    def __init__(
        self,
        replies: list[httpx2.Response | Exception],
        *,
        keys: tuple[str, ...] = ("k0",),
        **settings: Any,
    ) -> None:
        self.replies = list(replies)
        self.requests: list[httpx2.Request] = []
        self.sleeps: list[float] = []
        values: dict[str, Any] = {"upstream": BASE, "api_keys": keys, "max_retries": 2}
        values.update(settings)
        self.settings = Settings(**values)
        self.pool = KeyPool(keys)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.client = UpstreamClient(
            self.settings,
            self.pool,
            transport=httpx2.MockTransport(self.handle),
            sleep=sleep,
            rng=random.Random(7),
        )

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def send(self, *, stream: bool = False, session: str | None = None) -> Any:
        async def go() -> Any:
            try:
                reply = await self.client.send(
                    BASE + "/chat/completions",
                    b"{}",
                    headers=_headers,
                    decode_error=lambda status, body, retry: openai.error_from_upstream(
                        status, body, retry_after=retry
                    ),
                    stream=stream,
                    session_id=session,
                )
                if stream:
                    await reply.response.aclose()
                return reply
            finally:
                await self.client.aclose()

        return anyio.run(go)

    def keys_used(self) -> list[str]:
        return [r.headers["authorization"].removeprefix("Bearer ") for r in self.requests]


def _headers(key: str) -> dict[str, str]:
    return {**PROFILE.auth_headers(key), "content-type": "application/json"}


def test_success_sends_the_documented_headers() -> None:
    h = Harness([httpx2.Response(200, content=OK_BODY)])
    reply = h.send()
    assert reply.response.content == OK_BODY and reply.attempts == 1 and reply.key_index == 0
    (req,) = h.requests
    assert str(req.url) == BASE + "/chat/completions"
    assert req.headers["authorization"] == "Bearer k0"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept-language"] == "en-US,en"


def test_throttled_429_is_retried_then_succeeds() -> None:
    h = Harness([glm_error(429, "1302"), httpx2.Response(200, content=OK_BODY)])
    reply = h.send()
    assert reply.attempts == 2 and len(h.requests) == 2
    assert len(h.sleeps) == 1 and 0 <= h.sleeps[0] <= 0.5  # full jitter, first step


@pytest.mark.parametrize("code", ["1302", "1303", "1305", "1312"])
def test_every_throttling_code_is_retryable(code: str) -> None:
    h = Harness([glm_error(429, code), httpx2.Response(200, content=OK_BODY)])
    assert h.send().attempts == 2


@pytest.mark.parametrize(
    ("status", "code"), [(400, "1210"), (400, "1261"), (429, "1304"), (404, "1222")]
)
def test_non_retryable_errors_are_returned_at_once(status: int, code: str) -> None:
    h = Harness([glm_error(status, code), httpx2.Response(200, content=OK_BODY)])
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert len(h.requests) == 1 and h.sleeps == []
    assert info.value.status == status and info.value.code == code


def test_5xx_is_retried_up_to_max_retries() -> None:
    h = Harness([glm_error(500, "500")], max_retries=2)
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert len(h.requests) == 3 and len(h.sleeps) == 2
    assert info.value.status == 500


def test_retry_after_seconds_is_honoured() -> None:
    h = Harness(
        [glm_error(429, "1302", **{"retry-after": "3"}), httpx2.Response(200, content=OK_BODY)]
    )
    h.send()
    assert h.sleeps == [3.0]


def test_retry_after_beyond_cap_is_passed_to_the_client_instead() -> None:
    h = Harness([glm_error(429, "1302", **{"retry-after": "600"})])
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert len(h.requests) == 1 and info.value.retry_after == 600.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(42)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_after_ms_is_read_first() -> None:
    # Z.ai's Anthropic endpoint was logged sending retry-after-ms with a 1310
    # (Yeachan-Heo/gajae-code#1821)
    assert retry_after_from({"retry-after-ms": "504641000"}) == pytest.approx(504641.0)
    assert retry_after_from({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_from({"retry-after-ms": "x", "retry-after": "9"}) == 9.0
    assert retry_after_from({"retry-after": "3"}) == 3.0 and retry_after_from({}) is None


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    for attempt in range(1, 12):
        ceiling = min(BACKOFF_CAP, 0.5 * 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, rng) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # the whole range is used
    assert backoff_delay(1, rng, retry_after=100.0) == 20.0


def test_401_with_one_key_is_not_retried() -> None:
    h = Harness([glm_error(401, "1002"), httpx2.Response(200, content=OK_BODY)])
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert len(h.requests) == 1 and info.value.kind is ErrorKind.AUTHENTICATION
    assert h.pool.is_cooling(0)


@pytest.mark.parametrize(
    ("status", "code", "cooldown"),
    [(401, "1002", "auth"), (429, "1113", "quota"), (429, "1308", "quota"), (403, "1220", "auth")],
)
def test_key_failure_fails_over_and_cools_down(status: int, code: str, cooldown: str) -> None:
    h = Harness(
        [glm_error(status, code), httpx2.Response(200, content=OK_BODY)],
        keys=("k0", "k1"),
        auth_cooldown=300,
        quota_cooldown=60,
    )
    reply = h.send(session="sess")
    first, second = h.keys_used()
    assert first != second and reply.key_index == int(second[1])
    bad = int(first[1])
    remaining = h.pool.status()[bad]["cooldown_remaining"]
    assert remaining == pytest.approx(300 if cooldown == "auth" else 60, abs=5)
    assert h.sleeps == []  # failover does not wait


def test_all_keys_failing_returns_the_last_error() -> None:
    h = Harness([glm_error(401, "1002")], keys=("k0", "k1", "k2"))
    with pytest.raises(UpstreamError):
        h.send()
    assert sorted(h.keys_used()) == ["k0", "k1", "k2"]


def test_session_stickiness_reaches_the_wire() -> None:
    h = Harness([httpx2.Response(200, content=OK_BODY)], keys=("k0", "k1", "k2", "k3"))
    for _ in range(5):
        h.client = UpstreamClient(h.settings, h.pool, transport=httpx2.MockTransport(h.handle))
        h.send(session="one-session")
    assert len(set(h.keys_used())) == 1


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx2.ConnectError("refused"), UpstreamConnectionError),
        (httpx2.ConnectTimeout("slow"), UpstreamTimeoutError),
        (httpx2.RemoteProtocolError("dropped"), UpstreamConnectionError),
    ],
)
def test_transport_errors_are_mapped_and_retried(exc: Exception, expected: type[Exception]) -> None:
    h = Harness([exc], max_retries=1)
    with pytest.raises(expected):
        h.send()
    assert len(h.requests) == 2


def test_a_full_connection_pool_is_overloaded_at_once() -> None:
    """No free pooled connection (upstream_connections): a native overloaded error with a
    retry hint for the client, not a retry loop here."""
    h = Harness([httpx2.PoolTimeout("busy")], max_retries=2)
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert info.value.kind is ErrorKind.OVERLOADED and info.value.retry_after == 1.0
    assert "upstream_connections" in info.value.message
    assert len(h.requests) == 1


@pytest.mark.parametrize(
    "exc",
    [httpx2.ReadTimeout("idle"), httpx2.WriteTimeout("stuck"), httpx2.ReadError("reset")],
)
def test_failures_after_the_request_was_sent_are_not_retried(exc: Exception) -> None:
    """The upstream may be generating (and billing) the answer: a retry would be a second."""
    h = Harness([exc], max_retries=2)
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert len(h.requests) == 1
    assert not info.value.retryable


def test_transport_error_then_success() -> None:
    h = Harness([httpx2.ConnectError("refused"), httpx2.Response(200, content=OK_BODY)])
    assert h.send().attempts == 2


def test_stream_reply_is_returned_unread() -> None:
    h = Harness([httpx2.Response(200, content=b"data: {}\n\n")])
    reply = h.send(stream=True)
    assert reply.response.status_code == 200


def test_no_key_is_an_authentication_error_that_explains_the_fix() -> None:
    h = Harness([httpx2.Response(200)], keys=())
    with pytest.raises(UpstreamError) as info:
        h.send()
    assert info.value.kind is ErrorKind.AUTHENTICATION and info.value.status_hint == 401
    assert "ZAI_API_KEY" in info.value.message and "--mock" in info.value.message
    assert h.requests == []


def test_keys_never_appear_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    h = Harness(
        [glm_error(401, "1002"), glm_error(429, "1302"), httpx2.Response(200, content=OK_BODY)],
        keys=("sk.TOPSECRET0", "sk.TOPSECRET1"),
    )
    h.send()
    assert "TOPSECRET" not in caplog.text
    assert "key #" in caplog.text
