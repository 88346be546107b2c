"""glmbridge.transport under upstream faults: the official SDK over ``GlmTransport`` /
``AsyncGlmTransport`` in front of :mod:`tests.server.faults` on a real loopback socket.

The transports follow the relay's rules (see ``glmbridge/transport/sdk.py``): a stream
that has delivered its final event ends there whatever the upstream does next; a failure
mid-answer is an ``error`` event (the SDK raises); a silent upstream is a timeout error
within the configured timeouts, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import pytest

from glmbridge import validate_anthropic_stream
from glmbridge.transport import AsyncGlmTransport, GlmTransport
from tests.server.faults import (
    GARBAGE,
    End,
    FaultServer,
    Part,
    Pause,
    Plan,
    Raw,
    answer,
    glm_chunk,
    glm_completion,
    json_plan,
    silent,
    stream_plan,
)
from tests.support.messages import text_of
from tests.support.sse import sse_events

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-4-5"
BASE_URL = "http://glmbridge.local"
KEY = "zai-test-key.secret"
BODY: dict[str, Any] = {
    "model": SONNET,
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello"}],
}
MODES = ["sync", "async"]


@pytest.fixture(scope="module")
def _server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def up(_server: FaultServer) -> FaultServer:
    """The module's fault server; ``up.reset(*plans)`` sets this test's plans."""
    return _server.reset()


def _transport_args(up: FaultServer, read: float, first_output: float) -> dict[str, Any]:
    return {
        "api_key": KEY,
        "upstream": f"{up.url}/v4",
        "timeout": httpx2.Timeout(connect=2.0, read=read, write=2.0, pool=2.0),
        "first_output_timeout": first_output,
    }


def sdk_stream(
    up: FaultServer, mode: str, *, read: float = 8.0, first_output: float = 10.0
) -> tuple[Any, float]:
    """The SDK's final message for a streamed request, and the seconds it took.

    The SDK's own timeout does not reach an in-process transport: ``read`` (the upstream
    idle timeout) is what bounds every test.
    """
    args = _transport_args(up, read, first_output)
    started = time.monotonic()
    if mode == "sync":
        http = httpx2.Client(transport=GlmTransport(**args))
        with (
            anthropic.Anthropic(
                api_key="x", base_url=BASE_URL, http_client=http, max_retries=0
            ) as client,
            client.messages.stream(**BODY) as stream,
        ):
            message = stream.get_final_message()
    else:

        async def go() -> Any:
            http = httpx2.AsyncClient(transport=AsyncGlmTransport(**args))
            async with (
                anthropic.AsyncAnthropic(
                    api_key="x", base_url=BASE_URL, http_client=http, max_retries=0
                ) as client,
                client.messages.stream(**BODY) as stream,
            ):
                return await stream.get_final_message()

        message = asyncio.run(go())
    return message, time.monotonic() - started


def sdk_create(
    up: FaultServer, mode: str, *, read: float = 8.0, first_output: float = 10.0
) -> tuple[Any, float]:
    """``messages.create`` (not streamed) over the transport, and the seconds it took."""
    args = _transport_args(up, read, first_output)
    started = time.monotonic()
    if mode == "sync":
        http = httpx2.Client(transport=GlmTransport(**args))
        with anthropic.Anthropic(
            api_key="x", base_url=BASE_URL, http_client=http, max_retries=0
        ) as client:
            message = client.messages.create(**BODY)
    else:

        async def go() -> Any:
            http = httpx2.AsyncClient(transport=AsyncGlmTransport(**args))
            async with anthropic.AsyncAnthropic(
                api_key="x", base_url=BASE_URL, http_client=http, max_retries=0
            ) as client:
                return await client.messages.create(**BODY)

        message = asyncio.run(go())
    return message, time.monotonic() - started


@dataclass
class RawResponse:
    status: int
    headers: httpx2.Headers
    body: bytes
    elapsed: float

    @property
    def events(self) -> list[tuple[str | None, dict[str, Any]]]:
        return sse_events(self.body)

    @property
    def names(self) -> list[str | None]:
        return [name for name, _ in self.events]


def post_raw(
    up: FaultServer,
    mode: str,
    *,
    stream: bool = True,
    read: float = 8.0,
    first_output: float = 10.0,
) -> RawResponse:
    """POST straight to the transport through an httpx2 client; read the whole body."""
    args = _transport_args(up, read, first_output)
    body = {**BODY, "stream": stream}
    started = time.monotonic()
    if mode == "sync":
        with httpx2.Client(transport=GlmTransport(**args)) as http:
            response = http.post(f"{BASE_URL}/v1/messages", json=body)
    else:

        async def go() -> httpx2.Response:
            async with httpx2.AsyncClient(transport=AsyncGlmTransport(**args)) as http:
                return await http.post(f"{BASE_URL}/v1/messages", json=body)

        response = asyncio.run(go())
    return RawResponse(
        response.status_code, response.headers, response.content, time.monotonic() - started
    )


def assert_sdk_answer(message: Any, text: str = "Hi") -> None:
    assert text_of(message) == text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2


def assert_complete(out: RawResponse, text: str = "Hi") -> None:
    """A grammatical, complete answer, with nothing after ``message_stop``."""
    assert out.status == 200, out.body
    validate_anthropic_stream(out.body)
    names = out.names
    assert names.count("message_start") == 1 and names.count("message_stop") == 1, names
    assert names[-1] == "message_stop" and "error" not in names, names
    deltas = [e["delta"].get("text", "") for n, e in out.events if n == "content_block_delta"]
    assert "".join(deltas) == text
    tail = out.body[out.body.rindex(b"event: message_stop") :]
    assert tail.count(b"\n\n") == 1 and tail.endswith(b"\n\n"), tail


# --- a finished answer stays finished ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("end", ["reset", "hang"])
def test_done_then_reset_or_hang_completes_promptly(up: FaultServer, mode: str, end: End) -> None:
    up.reset(stream_plan(*answer("Hi"), end=end))
    message, elapsed = sdk_stream(up, mode, read=8.0)
    assert_sdk_answer(message)
    assert elapsed < 2.0, f"took {elapsed:.2f} s with an 8 s idle timeout"

    out = post_raw(up, mode, read=8.0)
    assert_complete(out)
    assert out.elapsed < 2.0
    if end == "hang" and mode == "async":  # the async drain gives up after 0.25 s
        assert up.wait_peer_closed(0, timeout=1.0)
        assert up.wait_peer_closed(1, timeout=1.0)
    # sync: a daemon thread reads the epilogue (so that a well-behaved upstream's connection
    # is reused); a hanging one is let go at the read timeout, never at the client's expense


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("end", ["reset", "hang"])
def test_non_streamed_answer_then_reset_or_hang(up: FaultServer, mode: str, end: End) -> None:
    up.reset(json_plan(glm_completion("Hi"), end=end))
    message, elapsed = sdk_create(up, mode)
    assert_sdk_answer(message)
    assert elapsed < 2.0


@pytest.mark.parametrize("mode", MODES)
def test_done_then_garbage_never_reaches_the_client(up: FaultServer, mode: str) -> None:
    up.reset(stream_plan(*answer("Hi"), Raw(GARBAGE), end="reset"))
    message, elapsed = sdk_stream(up, mode)
    assert_sdk_answer(message)
    out = post_raw(up, mode)
    assert_complete(out)
    assert max(elapsed, out.elapsed) < 2.0


# --- a failure after the final stop reason completes the answer ----------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("end", ["reset", "eof", "hang"])
def test_finish_chunk_then_failure_completes(up: FaultServer, mode: str, end: End) -> None:
    # No [DONE]: the idle timeout (0.4 s) ends a hanging upstream; the answer is complete.
    up.reset(stream_plan(*answer("Hi", done=False), end=end))
    message, elapsed = sdk_stream(up, mode, read=0.4)
    assert_sdk_answer(message)
    out = post_raw(up, mode, read=0.4)
    assert_complete(out)
    assert max(elapsed, out.elapsed) < 2.0


# --- a failure mid-answer is an error event ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("end", ["reset", "eof", "hang"])
def test_mid_stream_failure_makes_the_sdk_raise(up: FaultServer, mode: str, end: End) -> None:
    up.reset(stream_plan(glm_chunk("Hel"), glm_chunk("lo"), Pause(0.05), end=end))
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_stream(up, mode, read=0.4)
    assert time.monotonic() - started < 2.0
    assert info.value.body["error"]["type"] in ("api_error", "timeout_error")  # type: ignore[index]

    out = post_raw(up, mode, read=0.4)
    assert out.status == 200
    validate_anthropic_stream(out.body)
    names = out.names
    assert names[-1] == "error" and "message_stop" not in names and "message_delta" not in names
    deltas = [e["delta"].get("text", "") for n, e in out.events if n == "content_block_delta"]
    assert "".join(deltas) == "Hello"
    assert out.elapsed < 2.0


# --- a silent upstream is a timeout error, not a hang --------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("plan", [silent(), stream_plan(Pause(30.0))], ids=["silent", "headers"])
def test_silent_upstream_times_out_at_the_idle_timeout(
    up: FaultServer, mode: str, plan: Plan
) -> None:
    up.reset(plan)
    out = post_raw(up, mode, read=0.5, first_output=30.0)
    assert out.status == 504, out.body
    body = json.loads(out.body)
    assert body["error"]["type"] == "timeout_error", body
    assert out.headers.get("x-should-retry") == "false"  # a read timeout: never retried
    assert 0.4 < out.elapsed < 1.5, f"took {out.elapsed:.2f} s with a 0.5 s idle timeout"

    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_stream(up, mode, read=0.5, first_output=30.0)
    assert info.value.status_code == 504


@pytest.mark.parametrize("mode", MODES)
def test_silent_upstream_non_streamed_times_out(up: FaultServer, mode: str) -> None:
    up.reset(silent())
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_create(up, mode, read=0.5)
    assert info.value.status_code == 504
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("plan", [silent(), stream_plan(Pause(30.0))], ids=["silent", "headers"])
def test_silent_upstream_times_out_at_the_first_output_timeout(
    up: FaultServer, mode: str, plan: Plan
) -> None:
    # first_output_timeout is "the longest wait for a stream's first output": it must
    # hold even while no byte at all arrives (the idle timeout here is much longer).
    up.reset(plan)
    out = post_raw(up, mode, read=2.5, first_output=0.6)
    assert out.status == 504, out.body
    assert json.loads(out.body)["error"]["type"] == "timeout_error"
    assert out.elapsed < 1.5, f"took {out.elapsed:.2f} s with first_output_timeout 0.6"


# SSE comments: traffic, but no output.
KEEPALIVES: list[Part] = [b": keep-alive\n\n", Pause(0.1)] * 50


@pytest.mark.parametrize("mode", MODES)
def test_keepalive_only_upstream_times_out_at_the_first_output_timeout(
    up: FaultServer, mode: str
) -> None:
    up.reset(stream_plan(*KEEPALIVES, end="hang"))
    out = post_raw(up, mode, read=2.5, first_output=0.6)
    assert out.status == 504, out.body
    assert json.loads(out.body)["error"]["type"] == "timeout_error"
    assert 0.5 < out.elapsed < 1.5, f"took {out.elapsed:.2f} s with first_output_timeout 0.6"


@pytest.mark.parametrize("mode", MODES)
def test_first_output_timeout_is_not_retried_by_the_sdk(up: FaultServer, mode: str) -> None:
    # Like a read timeout, the upstream may be generating (and billing) that answer
    # already: the transport must tell the SDK not to retry (x-should-retry: false).
    up.reset(stream_plan(*KEEPALIVES, end="hang"))
    args = _transport_args(up, 2.5, 0.6)
    with pytest.raises(anthropic.APIStatusError) as info:
        if mode == "sync":
            http = httpx2.Client(transport=GlmTransport(**args))
            with anthropic.Anthropic(
                api_key="x", base_url=BASE_URL, http_client=http, max_retries=2
            ) as sdk:
                sdk.messages.create(**BODY, stream=True)
        else:

            async def go() -> None:
                http = httpx2.AsyncClient(transport=AsyncGlmTransport(**args))
                async with anthropic.AsyncAnthropic(
                    api_key="x", base_url=BASE_URL, http_client=http, max_retries=2
                ) as sdk:
                    await sdk.messages.create(**BODY, stream=True)

            asyncio.run(go())
    assert info.value.status_code == 504
    assert up.request_count == 1, f"the SDK retried: {up.request_count} upstream requests"
    assert info.value.response.headers.get("x-should-retry") == "false"
