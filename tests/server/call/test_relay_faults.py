"""The relay's rules under upstream faults: a real bridge (uvicorn on loopback) in front of
:mod:`tests.server.faults`, driven by the official ``anthropic`` SDK and raw ``httpx2``.

The rules (``glmbridge_server/call/relay.py``): a finished answer stays finished (nothing after
``message_stop``, whatever the upstream does next); a failure after the final stop reason
completes the answer; a failure mid-answer is an ``error`` event, never a fake end; the
client is never left in silence (early commit, pings) and the first output is bounded by
``first_output_timeout``, which is never retried; in-band errors before any content are a
real status, or retried, without a second ``message_start``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge import validate_anthropic_stream
from glmbridge.sse import SSEDecoder
from glmbridge_server.edge.app import create_app
from tests.server.faults import (
    DONE,
    GARBAGE,
    End,
    FaultServer,
    Pause,
    Plan,
    Raw,
    answer,
    glm_chunk,
    glm_completion,
    glm_error,
    json_plan,
    silent,
    sse,
    stream_plan,
)
from tests.support.messages import text_of

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hello"}]
BODY: dict[str, Any] = {"model": SONNET, "max_tokens": 64, "messages": MESSAGES}


# --- fixtures and helpers ----------------------------------------------------------------------


def sdk(url: str, timeout: float = 8.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="x", max_retries=0, timeout=timeout)


def sdk_stream(url: str, timeout: float = 8.0) -> tuple[Any, float]:
    """The SDK's final message of a streamed request, and the seconds it took."""
    started = time.monotonic()
    with sdk(url, timeout) as client, client.messages.stream(**BODY) as stream:
        message = stream.get_final_message()
    return message, time.monotonic() - started


@dataclass
class Frame:
    at: float  # seconds since the request was sent
    event: str | None
    data: dict[str, Any]


@dataclass
class RawStream:
    """A streamed response as the client saw it, with arrival times."""

    status: int
    headers: httpx2.Headers
    headers_at: float
    raw: bytes = b""
    frames: list[Frame] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def events(self) -> list[str | None]:
        return [f.event for f in self.frames]

    def first(self, event: str) -> Frame:
        return next(f for f in self.frames if f.event == event)

    @property
    def text(self) -> str:
        return "".join(
            f.data["delta"].get("text", "") for f in self.frames if f.event == "content_block_delta"
        )


def post_raw(url: str, *, stream: bool = True, timeout: float = 8.0) -> RawStream:
    """POST a request with raw httpx2 and read the whole body, timing every SSE frame."""
    body = {**BODY, "stream": stream}
    started = time.monotonic()
    with (
        httpx2.Client(timeout=httpx2.Timeout(timeout)) as http,
        http.stream("POST", f"{url}/v1/messages", json=body) as response,
    ):
        out = RawStream(response.status_code, response.headers, time.monotonic() - started)
        decoder = SSEDecoder()
        parts = []
        for chunk in response.iter_raw():
            now = time.monotonic() - started
            parts.append(chunk)
            if response.status_code == 200 and stream:
                for frame in decoder.feed(chunk):
                    out.frames.append(Frame(now, frame.event, json.loads(frame.data)))
        out.raw = b"".join(parts)
    out.elapsed = time.monotonic() - started
    return out


def assert_complete(out: RawStream, text: str = "Hi") -> None:
    """A grammatical, complete answer, with nothing after ``message_stop``."""
    assert out.status == 200, out.raw
    validate_anthropic_stream(out.raw)
    assert out.events.count("message_start") == 1, out.events
    assert out.events[-1] == "message_stop", out.events
    assert out.events.count("message_stop") == 1
    assert "error" not in out.events, out.raw
    delta = out.first("message_delta").data
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == 2
    assert out.text == text
    # Not a byte after the final event: no ping, no error, no second frame.
    tail = out.raw[out.raw.rindex(b"event: message_stop") :]
    assert tail.count(b"\n\n") == 1 and tail.endswith(b"\n\n"), tail


def assert_sdk_answer(message: Any, text: str = "Hi") -> None:
    assert text_of(message) == text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2


def error_count(url: str) -> float:
    """The bridge's ``glmbridge_errors_total`` over every error type."""
    text = httpx2.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^glmbridge_errors_total\{[^}]*\} (\S+)$", text, re.M))


def requests_settle(up: FaultServer, seconds: float = 0.05) -> int:
    """The upstream's request count once the client has its whole answer (every retry
    happens before the answer ends; the moment covers the fault server's bookkeeping)."""
    time.sleep(seconds)
    return up.request_count


# --- a finished answer stays finished ------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_done_then_reset_completes(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], chunked: bool
) -> None:
    up = upstream(stream_plan(*answer("Hi"), end="reset", chunked=chunked))
    url = bridge_for(up)

    message, _ = sdk_stream(url)
    assert_sdk_answer(message)

    out = post_raw(url)
    assert_complete(out)
    assert up.request_count == 2


@pytest.mark.parametrize("end", ["reset", "hang"])
def test_non_streamed_answer_then_reset_or_hang(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], end: End
) -> None:
    up = upstream(json_plan(glm_completion("Hi"), end=end))
    url = bridge_for(up)
    started = time.monotonic()
    with sdk(url) as client:
        message = client.messages.create(**BODY)
    assert_sdk_answer(message)
    assert time.monotonic() - started < 2.0


def test_done_then_hang_completes_promptly(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    up = upstream(stream_plan(*answer("Hi"), end="hang"))
    url = bridge_for(up, idle_timeout=30.0)

    message, elapsed = sdk_stream(url)
    assert_sdk_answer(message)
    assert elapsed < 2.0, f"the SDK's stream took {elapsed:.2f} s"

    out = post_raw(url)
    assert_complete(out)
    assert out.elapsed < 2.0, f"the raw stream took {out.elapsed:.2f} s"
    # The relay stopped reading at [DONE] and let the upstream connections go at once.
    assert up.wait_peer_closed(0, timeout=1.0), "the bridge kept the hanging upstream open"
    assert up.wait_peer_closed(1, timeout=1.0), "the bridge kept the hanging upstream open"


@pytest.mark.parametrize(
    ("end", "framed"),
    [("close", True), ("close", False), ("reset", False), ("hang", False)],
    ids=["close-in-chunk", "close-breaks-framing", "reset-breaks-framing", "hang-breaks-framing"],
)
def test_done_then_garbage_never_reaches_the_client(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], framed: bool, end: End
) -> None:
    garbage = GARBAGE if framed else Raw(GARBAGE)
    up = upstream(stream_plan(*answer("Hi"), garbage, sse("not json {"), end=end))
    url = bridge_for(up)

    message, elapsed = sdk_stream(url)
    assert_sdk_answer(message)
    out = post_raw(url)
    assert_complete(out)
    assert max(elapsed, out.elapsed) < 2.0


# --- a failure after the final stop reason completes the answer ----------------------------------


def test_finish_chunk_then_reset_completes(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    up = upstream(stream_plan(*answer("Hi", done=False), end="reset"))
    url = bridge_for(up)

    message, elapsed = sdk_stream(url)
    assert_sdk_answer(message)
    out = post_raw(url)
    assert_complete(out)
    assert max(elapsed, out.elapsed) < 2.0


def test_finish_chunk_then_hang_completes_at_the_idle_timeout(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    # Usage may still follow the finish chunk, so only [DONE], EOF or a failure ends the
    # input: here the idle timeout, and the answer is completed, not failed.
    up = upstream(stream_plan(*answer("Hi", done=False), end="hang"))
    url = bridge_for(up, idle_timeout=0.6)

    out = post_raw(url)
    assert_complete(out)
    assert out.elapsed < 2.0, f"took {out.elapsed:.2f} s with idle_timeout 0.6"

    message, elapsed = sdk_stream(url)
    assert_sdk_answer(message)
    assert elapsed < 2.0


@pytest.mark.parametrize("end", ["reset", "eof"])
def test_finish_chunk_then_failure_is_not_counted_as_an_error(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], end: End
) -> None:
    # The client got a complete answer; the metrics and the access log must agree.
    up = upstream(stream_plan(*answer("Hi", done=False), end=end))
    url = bridge_for(up)
    before = error_count(url)
    assert_complete(post_raw(url))
    time.sleep(0.1)  # the access log / metrics entry is written as the response ends
    assert error_count(url) == before, "a completed answer was counted as an error"


# --- the client is never left in silence; first output is bounded and not retried ---------------


@pytest.mark.parametrize(
    "plan",
    [silent(), stream_plan(Pause(30.0))],
    ids=["no-headers", "headers-then-silence"],
)
@pytest.mark.parametrize("idle_timeout", [30.0, 0.7], ids=["first-output", "idle"])
def test_silent_upstream_streaming_gets_pings_then_a_timeout_error(
    upstream: Callable[..., FaultServer],
    bridge_for: Callable[..., str],
    plan: Plan,
    idle_timeout: float,
) -> None:
    up = upstream(plan)
    url = bridge_for(
        up,
        commit_after=0.3,
        ping_interval=0.2,
        first_output_timeout=1.5,
        idle_timeout=idle_timeout,
        max_retries=2,
    )
    out = post_raw(url, timeout=5.0)
    limit = min(1.5, idle_timeout)

    assert out.status == 200
    assert out.headers["content-type"].startswith("text/event-stream")
    assert out.headers_at < 1.0, f"200 after {out.headers_at:.2f} s (commit_after 0.3)"
    validate_anthropic_stream(out.raw)
    assert out.events[0] == "message_start"
    assert out.first("message_start").at < 1.0
    assert "ping" in out.events, out.events
    assert out.events[-1] == "error", out.events
    assert set(out.events) == {"message_start", "ping", "error"}, out.events
    error = out.frames[-1]
    assert error.data["error"]["type"] == "timeout_error", error.data
    assert limit - 0.2 < error.at < limit + 1.0, f"error at {error.at:.2f} s"
    assert out.elapsed < 3.0
    # Never silence: after the commit, a frame at least every ping interval (plus slack).
    gaps = [b.at - a.at for a, b in zip(out.frames, out.frames[1:], strict=False)]
    assert max(gaps) < 0.6, gaps
    # A timeout is never retried (max_retries=2), and the upstream call is abandoned.
    assert requests_settle(up) == 1
    assert up.wait_peer_closed(0, timeout=1.0), "the upstream request was not cancelled"


@pytest.mark.parametrize("plan", [silent(), stream_plan(Pause(30.0))], ids=["silent", "headers"])
def test_silent_upstream_non_streaming_is_a_timeout_status(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], plan: Plan
) -> None:
    up = upstream(plan)
    url = bridge_for(up, first_output_timeout=1.0, max_retries=2, commit_after=0.3)
    started = time.monotonic()
    with sdk(url, timeout=5.0) as client, pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(**BODY)
    elapsed = time.monotonic() - started
    assert info.value.status_code == 504
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "timeout_error", body
    assert info.value.response.headers.get("x-should-retry") == "false"
    assert 0.9 < elapsed < 2.0, f"took {elapsed:.2f} s (first_output_timeout 1.0)"
    assert requests_settle(up) == 1, "a timeout was retried"
    assert up.wait_peer_closed(0, timeout=1.0), "the upstream request was not cancelled"


# --- a failure mid-answer is an error event, never a fake end ----------------------------------


@pytest.mark.parametrize("end", ["reset", "eof", "hang"])
def test_mid_stream_failure_ends_with_an_error_event(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], end: End
) -> None:
    parts = (glm_chunk("Hel"), glm_chunk("lo"), Pause(0.05))
    up = upstream(stream_plan(*parts, end=end))
    url = bridge_for(up, idle_timeout=0.5)

    out = post_raw(url)
    assert out.status == 200
    validate_anthropic_stream(out.raw)
    assert out.text == "Hello", "content before the failure must reach the client"
    assert out.events[-1] == "error", out.events
    assert "message_stop" not in out.events and "message_delta" not in out.events, out.events
    assert out.frames[-1].data["error"]["type"] in (
        "api_error",
        "timeout_error",
        "overloaded_error",
    )
    assert out.elapsed < 2.0

    received: list[str] = []
    with (
        sdk(url) as client,
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(**BODY) as stream,
    ):
        for event in stream:
            if event.type == "text":
                received.append(event.text)
    assert "".join(received) == "Hello"
    assert info.value.body["error"]["type"] in ("api_error", "timeout_error")  # type: ignore[index]
    assert requests_settle(up) == 2  # content went out: never retried


# --- in-band errors on HTTP 200 -----------------------------------------------------------------


def _error_plan(code: str, *, stream: bool, message: str = "网络错误") -> Plan:
    if stream:
        return stream_plan(sse(glm_error(code, message)), end="close")
    return json_plan(glm_error(code, message))


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [("1113", 429, "rate_limit_error"), ("1301", 400, "invalid_request_error")],
)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_in_band_error_on_200_is_a_real_status(
    upstream: Callable[..., FaultServer],
    bridge_for: Callable[..., str],
    code: str,
    status: int,
    kind: str,
    stream: bool,
) -> None:
    up = upstream(_error_plan(code, stream=stream, message="余额不足"))
    url = bridge_for(up, max_retries=1)
    out = post_raw(url, stream=stream)
    assert out.status == status, out.raw
    assert out.headers["content-type"].startswith("application/json")
    body = json.loads(out.raw)
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert code in body["error"]["message"] and "余额不足" in body["error"]["message"], body
    assert out.headers.get("x-should-retry") == "false"
    assert requests_settle(up) == 1, "a non-retryable in-band error was retried"

    with sdk(url) as client, pytest.raises(anthropic.APIStatusError) as info:
        if stream:
            with client.messages.stream(**BODY) as sdk_stream_:
                sdk_stream_.get_final_message()
        else:
            client.messages.create(**BODY)
    assert info.value.status_code == status and code in str(info.value)


@pytest.mark.parametrize("code", ["1302", "1234"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_retryable_in_band_error_on_200_is_retried(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], code: str, stream: bool
) -> None:
    good = stream_plan(*answer("Hi")) if stream else json_plan(glm_completion("Hi"))
    up = upstream(_error_plan(code, stream=stream), good)
    url = bridge_for(up, max_retries=1)
    out = post_raw(url, stream=stream)
    assert out.status == 200, out.raw
    if stream:
        assert_complete(out)
    else:
        assert json.loads(out.raw)["content"] == [{"type": "text", "text": "Hi"}]
    assert requests_settle(up) == 2


def test_in_band_retries_are_bounded(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    up = upstream(_error_plan("1302", stream=True))
    url = bridge_for(up, max_retries=1)
    out = post_raw(url)
    assert out.status == 429, out.raw
    assert "1302" in json.loads(out.raw)["error"]["message"]
    assert requests_settle(up) == 2


# --- early commit, then an in-band error ---------------------------------------------------------


def test_early_commit_then_retryable_error_then_answer(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    late_error = stream_plan(Pause(0.5), sse(glm_error("1302", "并发过高")), end="close")
    good = stream_plan(*answer("Hi"))
    up = upstream(late_error, good, late_error, good)
    url = bridge_for(up, commit_after=0.15, ping_interval=0.1, max_retries=1)

    out = post_raw(url)
    assert out.headers_at < 0.45, "no early commit"
    assert out.first("message_start").at < 0.45
    assert "ping" in out.events
    assert_complete(out)  # one message_start, one answer, nothing after message_stop
    assert out.first("content_block_start").at > 0.5
    assert up.request_count == 2

    message, _ = sdk_stream(url)
    assert_sdk_answer(message)
    assert requests_settle(up) == 4


@pytest.mark.parametrize("code,kind", [("1113", "rate_limit_error"), ("1302", "rate_limit_error")])
def test_early_commit_then_final_error_is_an_error_event(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str], code: str, kind: str
) -> None:
    # After the commit the status is spent: a final error before content is an error event
    # (1113 is not retryable; 1302 exhausts max_retries=0).
    up = upstream(stream_plan(Pause(0.4), sse(glm_error(code, "x")), end="close"))
    url = bridge_for(up, commit_after=0.15, ping_interval=0.1, max_retries=0)
    out = post_raw(url)
    assert out.status == 200
    validate_anthropic_stream(out.raw)
    assert out.events[0] == "message_start" and out.events[-1] == "error", out.events
    assert out.events.count("message_start") == 1
    assert out.frames[-1].data["error"]["type"] == kind
    assert code in out.frames[-1].data["error"]["message"]
    assert requests_settle(up) == 1


def test_done_marker_only_is_not_an_answer(
    upstream: Callable[..., FaultServer], bridge_for: Callable[..., str]
) -> None:
    # [DONE] with nothing before it: no answer, so no fake end either.
    up = upstream(stream_plan(DONE, end="hang"))
    url = bridge_for(up)
    out = post_raw(url)
    assert out.elapsed < 2.0
    if out.status == 200:
        validate_anthropic_stream(out.raw)
        assert out.events[-1] == "error" and "message_stop" not in out.events, out.events
    else:
        assert out.status >= 500 and json.loads(out.raw)["type"] == "error"


# --- connection reuse ------------------------------------------------------------------------


class _ConnectionCounter(httpx2.AsyncHTTPTransport):
    """A real transport that notes which network stream served each response."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[Any] = []  # the objects themselves: an id() could be reused

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        self.streams.append(response.extensions.get("network_stream"))
        return response


def test_streamed_answers_keep_the_upstream_connection_reusable(
    start_server: Callable[..., Any], sim: Any, bridge_settings: Callable[..., Any]
) -> None:
    """The relay stops at the final event, then reads the upstream's epilogue once the client
    is served, so the next turn reuses the connection (no new TCP/TLS handshake)."""

    counter = _ConnectionCounter()
    server = start_server(create_app(bridge_settings(sim.url), transport=counter))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    with httpx2.Client(timeout=10) as http:
        for _ in range(5):
            raw = http.post(f"{server.url}/v1/messages", json=body).content
            assert raw.rstrip().endswith(b'{"type":"message_stop"}')
            time.sleep(0.05)  # the epilogue is read after the client's response ends
    assert len(counter.streams) == 5 and counter.streams[0] is not None
    assert all(s is counter.streams[0] for s in counter.streams), counter.streams
