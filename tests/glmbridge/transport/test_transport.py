"""glmbridge.transport: the official anthropic and openai SDKs talking to GLM in-process.

The upstream is the GLM simulator on a real loopback socket; the SDK runs over
``GlmTransport`` / ``AsyncGlmTransport`` with ``max_retries=0``. A ``_Tee`` transport sits
between the SDK and ours to capture each response's raw bytes for the grammar validator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import msgspec
import openai
import pytest

from glmbridge import TokenEstimator, validate_anthropic_stream
from glmbridge.protocols import anthropic as anthropic_codec
from glmbridge.protocols.openai.grammar import validate_chat_stream
from glmbridge.protocols.responses import validate_responses_stream
from glmbridge.transport import AsyncGlmTransport, GlmTransport
from glmbridge_server.simulator import create_simulator_app
from tests.support.messages import text_of, user
from tests.support.servers import RunningServer, run_in_thread
from tests.support.simulator import chats, reset_simulator

SONNET = "claude-sonnet-4-5"
BASE_URL = "http://glmbridge.local"
KEY = "zai-test-key.secret"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

pytestmark = pytest.mark.e2e


class _Recorded(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Passes a response body through, keeping a copy."""

    def __init__(self, inner: Any, sink: list[bytes]) -> None:
        self._inner, self._sink = inner, sink

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._sink.append(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._sink.append(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Tee(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Wraps a GlmTransport or AsyncGlmTransport; ``bodies`` holds each response's bytes."""

    def __init__(self, inner: GlmTransport | AsyncGlmTransport) -> None:
        self.inner = inner
        self.bodies: list[list[bytes]] = []
        self.responses: list[httpx2.Response] = []

    def _wrap(self, response: httpx2.Response) -> httpx2.Response:
        sink: list[bytes] = []
        self.bodies.append(sink)
        self.responses.append(response)
        stream = _Recorded(response.stream, sink)
        return httpx2.Response(response.status_code, headers=response.headers, stream=stream)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(self.inner, GlmTransport)
        return self._wrap(self.inner.handle_request(request))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(self.inner, AsyncGlmTransport)
        return self._wrap(await self.inner.handle_async_request(request))

    def last_body(self) -> bytes:
        return b"".join(self.bodies[-1])

    def close(self) -> None:
        assert isinstance(self.inner, GlmTransport)
        self.inner.close()

    async def aclose(self) -> None:
        assert isinstance(self.inner, AsyncGlmTransport)
        await self.inner.aclose()


@pytest.fixture(scope="module")
def sim_server() -> Iterator[RunningServer]:
    server = run_in_thread(create_simulator_app())
    yield server
    server.stop()


@pytest.fixture
def sim(sim_server: RunningServer) -> RunningServer:
    reset_simulator(sim_server.app)
    return sim_server


def upstream_url(sim: RunningServer) -> str:
    return f"{sim.url}/api/coding/paas/v4"


@pytest.fixture
def tee(sim: RunningServer) -> Iterator[_Tee]:
    with _Tee(GlmTransport(api_key=KEY, upstream=upstream_url(sim))) as t:
        yield t


@pytest.fixture
def client(tee: _Tee) -> Iterator[anthropic.Anthropic]:
    http = httpx2.Client(transport=tee)
    with anthropic.Anthropic(
        api_key="unused", base_url=BASE_URL, http_client=http, max_retries=0
    ) as sdk:
        yield sdk


# --- sync ------------------------------------------------------------------------------------


def test_non_stream_text(client: anthropic.Anthropic, sim: RunningServer) -> None:
    raw = client.messages.with_raw_response.create(
        model=SONNET, max_tokens=256, messages=user("hello")
    )
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["content-type"] == "application/json"
    assert message.model == SONNET and message.role == "assistant"
    assert text_of(message) == "You said: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    (sent,) = chats(sim)
    assert sent["model"] == "glm-5.3" and sent.get("stream") in (None, False)
    assert sent["messages"][-1] == {"role": "user", "content": "hello"}


def test_stream_matches_non_stream(
    client: anthropic.Anthropic, tee: _Tee, sim: RunningServer
) -> None:
    whole = client.messages.create(model=SONNET, max_tokens=256, messages=user("same answer"))
    with client.messages.stream(
        model=SONNET, max_tokens=256, messages=user("same answer")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert tee.responses[-1].headers["content-type"].startswith("text/event-stream")
    assert tee.responses[-1].headers["request-id"].startswith("req_")
    validate_anthropic_stream(tee.last_body())
    assert text == text_of(final) == "You said: same answer"
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in whole.content]
    assert final.stop_reason == whole.stop_reason == "end_turn" and final.model == SONNET
    assert chats(sim)[-1]["stream"] is True and chats(sim)[-1]["model"] == "glm-5.3"


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_call(
    client: anthropic.Anthropic, tee: _Tee, sim: RunningServer, streamed: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 512,
        "messages": user("[[sim:tool]] weather?"),
        "tools": [WEATHER],
    }
    if streamed:
        with client.messages.stream(**kwargs) as stream:
            message = stream.get_final_message()
        validate_anthropic_stream(tee.last_body())
    else:
        message = client.messages.create(**kwargs)
    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
    assert chats(sim)[-1]["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("streamed", [False, True])
def test_upstream_429_is_rate_limit_error(client: anthropic.Anthropic, streamed: bool) -> None:
    kwargs: dict[str, Any] = {
        "model": SONNET,
        "max_tokens": 64,
        "messages": user("[[sim:error:1302]]"),
    }
    with pytest.raises(anthropic.RateLimitError) as info:
        if streamed:  # before any output: still a real status
            with client.messages.stream(**kwargs) as stream:
                stream.get_final_message()
        else:
            client.messages.create(**kwargs)
    err = info.value
    assert err.status_code == 429
    assert isinstance(err.body, dict) and err.body["error"]["type"] == "rate_limit_error"
    assert "1302" in err.body["error"]["message"]
    assert err.response.headers["request-id"] == err.body["request_id"]


def test_upstream_auth_error_names_no_key(sim: RunningServer) -> None:
    sim.app.state.invalid_keys = {KEY}
    transport = GlmTransport(api_key=KEY, upstream=upstream_url(sim))
    try:
        with (
            anthropic.Anthropic(
                api_key="x", base_url=BASE_URL, http_client=httpx2.Client(transport=transport)
            ) as sdk,
            pytest.raises(anthropic.AuthenticationError) as info,
        ):
            sdk.messages.create(model=SONNET, max_tokens=64, messages=user("hi"))
    finally:
        sim.app.state.invalid_keys = set()
    assert info.value.response.headers["x-should-retry"] == "false"  # so the SDK did not retry
    assert len(chats(sim)) == 1
    assert KEY not in info.value.response.text


def test_missing_max_tokens_is_bad_request(client: anthropic.Anthropic, sim: RunningServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post(
            "/v1/messages",
            body={"model": SONNET, "messages": user("hi")},
            cast_to=object,
        )
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert chats(sim) == []  # nothing went upstream


def test_count_tokens(client: anthropic.Anthropic, sim: RunningServer) -> None:
    params: dict[str, Any] = {
        "model": SONNET,
        "messages": user("count these words, please " * 20),
        "tools": [WEATHER],
    }
    result = client.messages.count_tokens(**params)
    req = anthropic_codec.decode_count_tokens_request(msgspec.json.encode(params))
    assert result.input_tokens == TokenEstimator().request_tokens(req) > 50
    assert sim.app.state.requests == []  # a local estimate


def test_unknown_path_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.models.list()
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "not_found_error"


def test_beta_messages(client: anthropic.Anthropic) -> None:
    message = client.beta.messages.create(model=SONNET, max_tokens=64, messages=user("beta"))
    assert text_of(message) == "You said: beta"


def test_mid_stream_error_becomes_error_event(client: anthropic.Anthropic, tee: _Tee) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model=SONNET, max_tokens=256, messages=user("[[sim:network_error]]")
        ) as stream,
    ):
        for event in stream:
            if event.type == "text":
                received.append(event.text)
    assert received, "text before the failure reaches the client"
    assert tee.responses[-1].status_code == 200
    raw = tee.last_body()
    validate_anthropic_stream(raw)
    assert b"event: error\n" in raw
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "api_error"


def test_closing_the_stream_closes_the_upstream(
    client: anthropic.Anthropic, sim: RunningServer
) -> None:
    started = time.monotonic()
    with client.messages.stream(  # 20 chunks 0.5 s apart: 10 s if read to the end
        model=SONNET,
        max_tokens=2048,
        messages=user("[[sim:slow:0.5]] bye"),
        thinking={"type": "enabled", "budget_tokens": 1024},  # the reasoning is the first delta
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    deadline = time.monotonic() + 3
    while sim.app.state.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.app.state.cancelled == 1 and sim.app.state.active_streams == 0
    assert time.monotonic() - started < 4


def test_unreachable_upstream_is_a_native_error(sim: RunningServer) -> None:
    transport = GlmTransport(api_key=KEY, upstream="http://127.0.0.1:9/v4")  # discard port
    with (
        anthropic.Anthropic(
            api_key="x",
            base_url=BASE_URL,
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        ) as sdk,
        pytest.raises(anthropic.InternalServerError) as info,
    ):
        sdk.messages.create(model=SONNET, max_tokens=64, messages=user("hi"))
    assert isinstance(info.value.body, dict)
    assert "upstream connection failed" in info.value.body["error"]["message"]


@pytest.mark.parametrize(
    ("upstream_body", "exc_type", "message"),
    [
        # GLM reports an error in-band as the first payload of a 200 stream
        (
            b'data: {"error":{"code":"1302","message":"busy"}}\n\n',
            anthropic.RateLimitError,
            "busy",
        ),
        (b"", anthropic.InternalServerError, "ended before completion"),  # an empty 200 body
    ],
)
def test_stream_error_before_output_is_a_status(
    upstream_body: bytes, exc_type: type[anthropic.APIStatusError], message: str
) -> None:
    seen: list[httpx2.Request] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=upstream_body
        )

    transport = GlmTransport(
        api_key=KEY,
        upstream="http://glm.test/v4/",
        upstream_transport=httpx2.MockTransport(upstream),
    )
    with (
        anthropic.Anthropic(
            api_key="x",
            base_url=BASE_URL,
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        ) as sdk,
        pytest.raises(exc_type, match=message) as info,
        sdk.messages.stream(model=SONNET, max_tokens=64, messages=user("hi")) as stream,
    ):
        stream.get_final_message()
    assert info.value.response.headers["content-type"] == "application/json"
    (sent,) = seen  # the transport itself never retries
    assert str(sent.url) == "http://glm.test/v4/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"


# --- async -----------------------------------------------------------------------------------


def test_async_transport(sim: RunningServer) -> None:
    tee = _Tee(AsyncGlmTransport(api_key=KEY, upstream=upstream_url(sim)))

    async def scenario() -> None:
        async with anthropic.AsyncAnthropic(
            api_key="unused",
            base_url=BASE_URL,
            http_client=httpx2.AsyncClient(transport=tee),
            max_retries=0,
        ) as sdk:
            whole = await sdk.messages.create(model=SONNET, max_tokens=256, messages=user("hi"))
            assert text_of(whole) == "You said: hi" and whole.model == SONNET

            async with sdk.messages.stream(
                model=SONNET, max_tokens=256, messages=user("hi")
            ) as stream:
                final = await stream.get_final_message()
            validate_anthropic_stream(tee.last_body())
            assert [b.model_dump() for b in final.content] == [
                b.model_dump() for b in whole.content
            ]

            tool = await sdk.messages.create(
                model=SONNET, max_tokens=512, messages=user("[[sim:tool]]"), tools=[WEATHER]
            )
            assert tool.stop_reason == "tool_use"
            assert [b.name for b in tool.content if b.type == "tool_use"] == ["get_weather"]

            for streamed in (False, True):
                with pytest.raises(anthropic.RateLimitError):
                    if streamed:
                        async with sdk.messages.stream(
                            model=SONNET, max_tokens=64, messages=user("[[sim:error:1302]]")
                        ) as s:
                            await s.get_final_message()
                    else:
                        await sdk.messages.create(
                            model=SONNET, max_tokens=64, messages=user("[[sim:error:1302]]")
                        )

            with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
                await sdk.post(
                    "/v1/messages", body={"model": SONNET, "messages": user("x")}, cast_to=object
                )

            count = await sdk.messages.count_tokens(model=SONNET, messages=user("hi"))
            assert count.input_tokens > 0

    asyncio.run(scenario())
    assert [c["model"] for c in chats(sim)] == ["glm-5.3"] * 5
    assert chats(sim)[1]["stream"] is True


# --- through Z.ai's Anthropic-compatible endpoint ---------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_transport_through_the_anthropic_endpoint(sim: RunningServer, mode: str) -> None:
    """The same SDK calls, served by the simulator's Anthropic-endpoint mode."""
    from glmbridge.profiles import profile_for

    profile = profile_for(f"{sim.url}/api/anthropic", protocol="anthropic")
    tools: Any = [WEATHER]

    def sync_calls() -> tuple[Any, Any, Any]:
        with anthropic.Anthropic(
            api_key="unused",
            base_url=BASE_URL,
            http_client=httpx2.Client(transport=GlmTransport(api_key=KEY, upstream=profile)),
            max_retries=0,
        ) as sdk:
            whole = sdk.messages.create(model=SONNET, max_tokens=256, messages=user("hi"))
            with sdk.messages.stream(
                model=SONNET, max_tokens=256, messages=user("[[sim:tool]]"), tools=tools
            ) as stream:
                tool = stream.get_final_message()
            count = sdk.messages.count_tokens(model=SONNET, messages=user("hi"))
        return whole, tool, count

    async def async_calls() -> tuple[Any, Any, Any]:
        async with anthropic.AsyncAnthropic(
            api_key="unused",
            base_url=BASE_URL,
            http_client=httpx2.AsyncClient(
                transport=AsyncGlmTransport(api_key=KEY, upstream=profile)
            ),
            max_retries=0,
        ) as sdk:
            whole = await sdk.messages.create(model=SONNET, max_tokens=256, messages=user("hi"))
            async with sdk.messages.stream(
                model=SONNET, max_tokens=256, messages=user("[[sim:tool]]"), tools=tools
            ) as stream:
                tool = await stream.get_final_message()
            count = await sdk.messages.count_tokens(model=SONNET, messages=user("hi"))
        return whole, tool, count

    whole, tool, count = sync_calls() if mode == "sync" else asyncio.run(async_calls())
    assert text_of(whole).endswith("hi") and whole.model == SONNET
    assert whole.id.startswith("msg_")
    assert tool.stop_reason == "tool_use"
    assert [b.name for b in tool.content if b.type == "tool_use"] == ["get_weather"]
    assert tool.usage.input_tokens > 0  # Z.ai's zero start usage never reaches the SDK
    assert count.input_tokens > 0
    bodies = chats(sim)
    assert [b["model"] for b in bodies] == ["glm-5.3", "glm-5.3"]
    assert bodies[1]["stream"] is True and bodies[1]["tools"][0]["name"] == "get_weather"


class _SyncCounter(httpx2.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.streams: list[Any] = []  # the objects themselves: an id() could be reused

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        self.streams.append(response.extensions.get("network_stream"))
        return response


class _AsyncCounter(httpx2.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.streams: list[Any] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        self.streams.append(response.extensions.get("network_stream"))
        return response


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streams_leave_the_upstream_connection_reusable(sim: RunningServer, mode: str) -> None:
    """The relay stops at the final event but still reads the upstream's epilogue, so the
    next request reuses the connection instead of a new TCP (and TLS) handshake."""
    if mode == "sync":
        sync_counter = _SyncCounter()
        transport = GlmTransport(
            api_key=KEY, upstream=upstream_url(sim), upstream_transport=sync_counter
        )
        with anthropic.Anthropic(
            api_key="x", base_url=BASE_URL, http_client=httpx2.Client(transport=transport),
            max_retries=0,
        ) as sdk:  # fmt: skip
            for _ in range(4):
                with sdk.messages.stream(model=SONNET, max_tokens=64, messages=user("hi")) as s:
                    s.get_final_message()
                time.sleep(0.1)  # the sync drain runs in a thread
        streams = sync_counter.streams
    else:
        async_counter = _AsyncCounter()

        async def run() -> None:
            transport = AsyncGlmTransport(
                api_key=KEY, upstream=upstream_url(sim), upstream_transport=async_counter
            )
            async with anthropic.AsyncAnthropic(
                api_key="x", base_url=BASE_URL,
                http_client=httpx2.AsyncClient(transport=transport), max_retries=0,
            ) as sdk:  # fmt: skip
                for _ in range(4):
                    async with sdk.messages.stream(
                        model=SONNET, max_tokens=64, messages=user("hi")
                    ) as s:
                        await s.get_final_message()

        asyncio.run(run())
        streams = async_counter.streams
    assert len(streams) == 4 and streams[0] is not None
    assert all(s is streams[0] for s in streams), streams


# --- the openai SDK over the same transport ----------------------------------------------------

WEATHER_FN = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER["input_schema"],
    },
}


@pytest.fixture
def oai(tee: _Tee) -> Iterator[openai.OpenAI]:
    http = httpx2.Client(transport=tee)
    with openai.OpenAI(
        api_key="unused", base_url=f"{BASE_URL}/v1", http_client=http, max_retries=0
    ) as sdk:
        yield sdk


def test_openai_chat_over_the_transport(oai: openai.OpenAI, tee: _Tee, sim: RunningServer) -> None:
    hi = [{"role": "user", "content": "hi"}]
    done = oai.chat.completions.create(model="glm-5.3", messages=hi)  # type: ignore[arg-type]
    assert done.object == "chat.completion" and done.choices[0].message.content == "You said: hi"
    assert done.usage is not None and done.usage.total_tokens > 0
    stream = oai.chat.completions.create(
        model="glm-5.3",
        messages=[{"role": "user", "content": "[[sim:tool]] weather?"}],
        tools=[WEATHER_FN],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    result = validate_chat_stream(tee.last_body(), include_usage=True)
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls[0][1] == "get_weather"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert chats(sim)[-1]["tools"][0]["function"]["name"] == "get_weather"


def test_openai_responses_over_the_transport(oai: openai.OpenAI, tee: _Tee) -> None:
    done = oai.responses.create(model="glm-5.3", input="hello", reasoning={"summary": "auto"})
    assert done.status == "completed" and done.output_text == "You said: hello"
    assert [item.type for item in done.output] == ["reasoning", "message"]
    events = list(oai.responses.create(model="glm-5.3", input="hello", stream=True,
                                       reasoning={"summary": "auto"}))  # fmt: skip
    assert events[-1].type == "response.completed"
    final = validate_responses_stream(tee.last_body())
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    # GLM reasons anyway; without a reasoning request the answer carries none (issue 11)
    plain = oai.responses.create(model="glm-5.3", input="hello")
    assert [item.type for item in plain.output] == ["message"]
    assert plain.usage is not None and plain.usage.output_tokens > 0


def test_openai_errors_over_the_transport(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="glm-5.3", messages=[{"role": "user", "content": "[[sim:error:1302]]"}]
        )
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert KEY not in str(caught.value.body)
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(
            model="glm-5.3", messages=[{"role": "user", "content": "x"}], n=3
        )
    assert bad.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        oai.models.list()
    assert missing.value.body["code"] == "not_found"  # type: ignore[index]


def test_openai_async_transport(sim: RunningServer) -> None:
    async def run() -> tuple[str, str]:
        transport = AsyncGlmTransport(api_key=KEY, upstream=upstream_url(sim))
        async with openai.AsyncOpenAI(
            api_key="unused",
            base_url=f"{BASE_URL}/v1",
            http_client=httpx2.AsyncClient(transport=transport),
            max_retries=0,
        ) as sdk:
            chat = await sdk.chat.completions.create(
                model="glm-5.3", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chat if c.choices])
            stream = await sdk.responses.create(model="glm-5.3", input="yo", stream=True)
            last = [event async for event in stream][-1]
            assert last.type == "response.completed"
            return text, last.response.output_text

    assert asyncio.run(run()) == ("You said: hi", "You said: yo")


# --- the google-genai SDK over the same transport ----------------------------------------------


def test_google_genai_over_the_transport(sim: RunningServer) -> None:
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

    options = types.HttpOptions(
        base_url=BASE_URL,
        client_args={"transport": GlmTransport(api_key=KEY, upstream=upstream_url(sim))},
        async_client_args={"transport": AsyncGlmTransport(api_key=KEY, upstream=upstream_url(sim))},
    )
    client = genai.Client(api_key="unused", http_options=options)
    assert client.models.generate_content(model="gemini-2.5-pro", contents="hi").text == (
        "You said: hi"
    )
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="yo"))
    assert "".join(c.text or "" for c in chunks) == "You said: yo"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert chats(sim)[-1]["model"] == "glm-5.3"  # gemini names route to GLM
    assert client.models.count_tokens(model="gemini-2.5-pro", contents="hi").total_tokens
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-pro", contents="[[sim:error:1302]]")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert KEY not in str(caught.value.details)

    async def run() -> str:
        answer = await client.aio.models.generate_content(model="gemini-2.5-pro", contents="a")
        return answer.text or ""

    assert asyncio.run(run()) == "You said: a"
