"""End to end: the official google-genai SDK (sync and async) → glmbridge (uvicorn) → the GLM
simulator (uvicorn), on the Gemini API door (``/v1`` and ``/v1beta``
``models/{model}:generateContent``, ``:streamGenerateContent``, ``:countTokens``, and
``GET …/models[/{model}]``).

The SDK talks ``/v1`` by default and ``/v1beta`` with ``api_version="v1beta"`` (what
gemini-cli uses); both are exercised. Raw streams are also read with httpx2, with and
without ``?alt=sse``, and checked frame by frame.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx2
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from glmbridge.protocols.gemini.grammar import validate_gemini_stream
from glmbridge_server.edge.app import create_app
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats, directive, last_chat

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-flash"  # a Gemini name: routed to the default GLM model (glm-5.3)
MODES = ["sync", "async"]
VERSIONS = [None, "v1beta"]  # None: the SDK's default, /v1
TOKEN = "gemini-door-token"
INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "A city"}},
    "required": ["location"],
}
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


class City(pydantic.BaseModel):
    name: str
    population: int


# --- the SDK, sync or async --------------------------------------------------------------


class Gemini:
    """``google.genai.Client`` calls, sync (``client.models``) or async
    (``client.aio.models``), each through a fresh client."""

    def __init__(self, url: str, mode: str, api_version: str | None = None,
                 api_key: str = "x") -> None:  # fmt: skip
        self.url, self.mode, self.api_version, self.api_key = url, mode, api_version, api_key

    def client(self) -> genai.Client:
        options = types.HttpOptions(base_url=self.url, api_version=self.api_version,
                                    timeout=30_000)  # fmt: skip
        return genai.Client(api_key=self.api_key, http_options=options)

    def call(self, method: str, **kwargs: Any) -> Any:
        """``models.<method>(**kwargs)``; for ``list`` and the stream, the list of items."""
        if method == "generate_content_stream":
            return self.stream(**kwargs)
        if self.mode == "sync":
            with self.client() as client:
                result = getattr(client.models, method)(**kwargs)
                return list(result) if method == "list" else result

        async def go() -> Any:
            with self.client() as client:
                async with client.aio as aio:
                    result = await getattr(aio.models, method)(**kwargs)
                    return [m async for m in result] if method == "list" else result

        return asyncio.run(go())

    def generate(self, **kwargs: Any) -> types.GenerateContentResponse:
        kwargs.setdefault("model", MODEL)
        return self.call("generate_content", **kwargs)  # type: ignore[no-any-return]

    def stream(self, sink: list[types.GenerateContentResponse] | None = None,
               **kwargs: Any) -> list[types.GenerateContentResponse]:  # fmt: skip
        """The stream's chunks; ``sink`` collects them as they arrive (before an error)."""
        kwargs.setdefault("model", MODEL)
        chunks = sink if sink is not None else []
        if self.mode == "sync":
            with self.client() as client:
                for chunk in client.models.generate_content_stream(**kwargs):
                    chunks.append(chunk)
            return chunks

        async def go() -> None:
            with self.client() as client:
                async with client.aio as aio:
                    async for chunk in await aio.models.generate_content_stream(**kwargs):
                        chunks.append(chunk)

        asyncio.run(go())
        return chunks

    def answer(self, streamed: bool, **kwargs: Any) -> Answer:
        if streamed:
            return Answer.of_chunks(self.stream(**kwargs))
        return Answer.of_chunks([self.generate(**kwargs)])


class Answer:
    """An answer's parts, folded from one response or a stream of chunks."""

    def __init__(self) -> None:
        self.text = ""
        self.thoughts = ""
        self.thought_parts = 0
        self.calls: list[types.FunctionCall] = []
        self.finish_reason: Any = None
        self.usage: types.GenerateContentResponseUsageMetadata | None = None
        self.model_version: str | None = None
        self.response_ids: set[str | None] = set()
        self.parts: list[types.Part] = []

    @classmethod
    def of_chunks(cls, chunks: list[types.GenerateContentResponse]) -> Answer:
        out = cls()
        assert chunks, "no chunk at all"
        for chunk in chunks:
            out.model_version = chunk.model_version
            out.response_ids.add(chunk.response_id)
            if chunk.usage_metadata is not None:
                out.usage = chunk.usage_metadata
            for candidate in chunk.candidates or ():
                if candidate.finish_reason is not None:
                    out.finish_reason = candidate.finish_reason
                for part in (candidate.content.parts if candidate.content else None) or ():
                    out.parts.append(part)
                    if part.thought:
                        out.thoughts += part.text or ""
                        out.thought_parts += 1
                    elif part.function_call is not None:
                        out.calls.append(part.function_call)
                    elif part.text:
                        out.text += part.text
        return out


def post(url: str, body: dict[str, Any], path: str, **kwargs: Any) -> httpx2.Response:
    return httpx2.post(f"{url}{path}", json=body, timeout=30, **kwargs)


def method_path(action: str, version: str = "v1beta", model: str = MODEL) -> str:
    return f"/{version}/models/{model}:{action}"


def user_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def assert_google_error(response: httpx2.Response, status: int, rpc: str) -> dict[str, Any]:
    """A Google-shaped error: ``{"error": {"code", "message", "status", "details"}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == status and error["status"] == rpc
    assert isinstance(error["message"], str) and error["message"]
    assert any(d.get("@type") == INFO for d in error.get("details", ())), error
    return error


def sse_frames(raw: bytes) -> list[dict[str, Any]]:
    """Every frame of an ``alt=sse`` stream: exactly ``data: <one-line json>\\n\\n``."""
    assert raw.endswith(b"\n\n"), raw[-200:]
    frames = raw[:-2].split(b"\n\n")
    out = []
    for frame in frames:
        assert frame.startswith(b"data: "), frame[:200]  # no comments, event: or id: lines
        payload = frame[len(b"data: ") :]
        assert b"\n" not in payload and b"\r" not in payload
        assert payload != b"[DONE]"
        out.append(json.loads(payload))
    return out


def check_grammar(raw: bytes, framing: Literal["sse", "array"],
                  include_thoughts: bool = False) -> dict[str, Any]:  # fmt: skip
    """The library's stream grammar over a raw answer; the stream folded into one response."""
    return validate_gemini_stream(raw, framing=framing, include_thoughts=include_thoughts)


def chunk_text(chunks: list[dict[str, Any]]) -> str:
    """The answer text of raw chunks (thoughts left out)."""
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def assert_chunk(chunk: dict[str, Any]) -> None:
    """One ``GenerateContentResponse`` chunk of a stream."""
    assert set(chunk) <= {"candidates", "usageMetadata", "modelVersion", "responseId"}, chunk
    assert chunk["modelVersion"] == MODEL and chunk["responseId"]
    (candidate,) = chunk["candidates"]
    assert candidate["content"]["role"] == "model"
    for part in candidate["content"]["parts"]:
        if "functionCall" in part:
            assert isinstance(part["functionCall"]["args"], dict)  # never a string


# --- text and thoughts -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api_version", VERSIONS)
@pytest.mark.parametrize("streamed", [False, True])
def test_text(
    bridge: RunningServer, sim: RunningServer, mode: str, api_version: str | None,
    streamed: bool,
) -> None:  # fmt: skip
    gemini = Gemini(bridge.url, mode, api_version)
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.5)
    answer = gemini.answer(streamed, contents="hello [[sim:text]]", config=config)
    assert answer.text == "You said: hello [[sim:text]]"
    assert answer.thought_parts == 0 and not answer.calls
    assert answer.finish_reason == types.FinishReason.STOP
    assert answer.model_version == MODEL
    (response_id,) = answer.response_ids  # the same id on every chunk
    assert response_id
    usage = answer.usage
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + (usage.thoughts_token_count or 0))  # fmt: skip
    upstream = last_chat(sim)
    assert upstream["model"] == "glm-5.3" and bool(upstream.get("stream")) is streamed
    assert upstream["messages"][0] == {"role": "system", "content": "Be brief."}
    assert upstream["temperature"] == 0.5


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("scenario", "finish", "text"), [
    ("length", "MAX_TOKENS", "This answer was cut off because it reached the max"),
    ("context_window", "MAX_TOKENS", "The context window is full"),
    ("sensitive", "SAFETY", "The quick brown "),
])  # fmt: skip
def test_finish_reasons(
    bridge: RunningServer, streamed: bool, scenario: str, finish: str, text: str
) -> None:
    answer = Gemini(bridge.url, "sync").answer(streamed, contents=f"hi [[sim:{scenario}]]")
    assert answer.finish_reason == finish and answer.text == text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("include", [True, False, None])
def test_thoughts_only_when_asked_for(
    bridge: RunningServer, sim: RunningServer, mode: str, streamed: bool, include: bool | None
) -> None:
    thinking = None if include is None else types.ThinkingConfig(include_thoughts=include)
    config = types.GenerateContentConfig(thinking_config=thinking)
    answer = Gemini(bridge.url, mode).answer(streamed, contents="hi [[sim:thinking]]",
                                             config=config)  # fmt: skip
    assert answer.text == "You said: hi [[sim:thinking]]"
    if include:
        assert answer.thought_parts >= 1
        assert answer.thoughts.strip().startswith("Let me think about this step by step.")
        # thoughts come first, then the answer
        kinds = [bool(p.thought) for p in answer.parts if p.text]
        assert kinds == sorted(kinds, reverse=True)
    else:
        assert answer.thought_parts == 0 and not answer.thoughts
    if include:  # asking for thoughts turns thinking on
        assert last_chat(sim)["thinking"] == {"type": "enabled"}


def test_thinking_budget_zero_turns_thinking_off(bridge: RunningServer, sim: RunningServer) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
    answer = Gemini(bridge.url, "sync").answer(False, contents="hi [[sim:thinking]]",
                                               config=config)  # fmt: skip
    assert answer.thought_parts == 0
    # a side request now (thinking off, no tools): GLM-5.3-Flash, which cannot stop
    # thinking, so "disabled" is not sent and the thoughts are dropped
    assert last_chat(sim)["model"] == "glm-5.3-flash" and "thinking" not in last_chat(sim)


# --- function calling --------------------------------------------------------------------


def weather_tool(openapi: bool = False) -> types.Tool:
    """``get_weather`` as a JSON Schema declaration, or with Gemini's OpenAPI ``parameters``."""
    if openapi:
        params = types.Schema(
            type=types.Type.OBJECT,
            required=["location"],
            properties={"location": types.Schema(type=types.Type.STRING)},
        )
        decl = types.FunctionDeclaration(name="get_weather", description="Weather for a city",
                                         parameters=params)  # fmt: skip
    else:
        decl = types.FunctionDeclaration(name="get_weather", description="Weather for a city",
                                         parameters_json_schema=WEATHER_SCHEMA)  # fmt: skip
    return types.Tool(function_declarations=[decl])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("openapi", [False, True])
def test_function_call(
    bridge: RunningServer, sim: RunningServer, mode: str, streamed: bool, openapi: bool
) -> None:
    config = types.GenerateContentConfig(tools=[weather_tool(openapi)],
                                         automatic_function_calling=NO_AFC)  # fmt: skip
    answer = Gemini(bridge.url, mode).answer(streamed, contents="weather? [[sim:tool]]",
                                             config=config)  # fmt: skip
    (call,) = answer.calls
    assert call.name == "get_weather" and call.args == {"location": "Paris"}
    assert call.id and call.id.startswith("call_")
    assert answer.text == "" and answer.finish_reason == types.FinishReason.STOP
    (tool,) = last_chat(sim)["tools"]
    assert tool["function"]["name"] == "get_weather"
    params = tool["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["location"]
    assert params["properties"]["location"]["type"] == "string"  # lower-case either way


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api_version", VERSIONS)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_round_trip(
    bridge: RunningServer, sim: RunningServer, mode: str, api_version: str | None,
    streamed: bool,
) -> None:  # fmt: skip
    gemini = Gemini(bridge.url, mode, api_version)
    config = types.GenerateContentConfig(tools=[weather_tool()], automatic_function_calling=NO_AFC)
    question = types.Content(role="user", parts=[types.Part(text="weather? [[sim:tool]]")])
    first = gemini.generate(contents=[question], config=config)
    assert first.function_calls is not None
    (call,) = first.function_calls
    assert first.candidates and first.candidates[0].content
    reply = types.Part(function_response=types.FunctionResponse(
        id=call.id, name=call.name, response={"output": "sunny, 22 C"}))  # fmt: skip
    history = [question, first.candidates[0].content, types.Content(role="user", parts=[reply])]
    final = gemini.answer(streamed, contents=history, config=config)
    assert final.text == "The command output was:\nsunny, 22 C"
    assert not final.calls and final.finish_reason == types.FinishReason.STOP
    messages = last_chat(sim)["messages"]
    assistant = next(m for m in messages if m["role"] == "assistant")
    (tool_call,) = assistant["tool_calls"]
    assert tool_call["id"] == call.id and tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == call.args
    (tool_message,) = [m for m in messages if m["role"] == "tool"]
    assert tool_message == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 22 C"}


def test_function_response_without_id_answers_the_call_by_name(
    bridge: RunningServer, sim: RunningServer
) -> None:
    """Gemini function calls often carry no id: the response is matched by name."""
    config = types.GenerateContentConfig(tools=[weather_tool()], automatic_function_calling=NO_AFC)
    history = [
        types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
        # gemini-cli's placeholder signature on a call that had none: accepted, ignored
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(
                        name="get_weather", args={"location": "Paris"}
                    ),
                    thought_signature=b"skip_thought_signature_validator",
                )
            ],
        ),  # fmt: skip
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        name="get_weather", response={"error": "service down"}
                    )
                )
            ],
        ),  # fmt: skip
    ]
    answer = Gemini(bridge.url, "sync").answer(False, contents=history, config=config)
    assert answer.text == "The command output was:\nError: service down"  # an error result
    messages = last_chat(sim)["messages"]
    (call,) = next(m for m in messages if m["role"] == "assistant")["tool_calls"]
    (tool_message,) = [m for m in messages if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == call["id"]


# --- JSON output -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
def test_json_output_with_a_pydantic_schema(
    bridge: RunningServer, sim: RunningServer, mode: str, streamed: bool
) -> None:
    script = directive(text=json.dumps({"name": "Paris", "population": 2100000}))
    config = types.GenerateContentConfig(response_mime_type="application/json",
                                         response_schema=City)  # fmt: skip
    contents = f"a city as JSON {script}"
    gemini = Gemini(bridge.url, mode)
    if streamed:
        answer = gemini.answer(True, contents=contents, config=config)
        assert City.model_validate_json(answer.text) == City(name="Paris", population=2100000)
    else:
        response = gemini.generate(contents=contents, config=config)
        assert response.parsed == City(name="Paris", population=2100000)
    upstream = last_chat(sim)
    assert upstream["response_format"] == {"type": "json_object"}
    system = upstream["messages"][0]
    assert system["role"] == "system" and "JSON" in system["content"]
    assert '"population"' in system["content"]  # the schema reached the model


def test_json_output_unscripted_fits_the_schema(bridge: RunningServer) -> None:
    """The simulator follows the schema glmbridge puts in the prompt, as GLM would."""
    config = types.GenerateContentConfig(response_mime_type="application/json",
                                         response_schema=City)  # fmt: skip
    response = Gemini(bridge.url, "sync").generate(contents="a city", config=config)
    assert isinstance(response.parsed, City) and response.parsed.name == "You said: a city"


@pytest.mark.parametrize("mode", MODES)
def test_json_output_with_a_json_schema(
    bridge: RunningServer, sim: RunningServer, mode: str
) -> None:
    schema = {"type": "object", "properties": {"reply": {"type": "string"}},
              "required": ["reply"]}  # fmt: skip
    config = types.GenerateContentConfig(response_mime_type="application/json",
                                         response_json_schema=schema)  # fmt: skip
    response = Gemini(bridge.url, mode).generate(contents="say hi", config=config)
    assert response.text is not None
    assert json.loads(response.text) == {"reply": "You said: say hi"}  # the simulator's JSON mode
    upstream = last_chat(sim)
    assert upstream["response_format"] == {"type": "json_object"}
    assert '"reply"' in upstream["messages"][0]["content"]


# --- countTokens, models -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api_version", VERSIONS)
def test_count_tokens(
    bridge: RunningServer, sim: RunningServer, mode: str, api_version: str | None
) -> None:
    gemini = Gemini(bridge.url, mode, api_version)
    before = len(sim.app.state.requests)
    short = gemini.call("count_tokens", model=MODEL, contents="hello")
    long = gemini.call("count_tokens", model=MODEL, contents="hello " * 200)
    assert isinstance(short, types.CountTokensResponse)
    assert short.total_tokens and long.total_tokens and 0 < short.total_tokens < long.total_tokens
    assert len(sim.app.state.requests) == before  # a local estimate


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api_version", VERSIONS)
def test_models_list_and_get(bridge: RunningServer, mode: str, api_version: str | None) -> None:
    gemini = Gemini(bridge.url, mode, api_version)
    models = gemini.call("list")
    names = [m.name for m in models]
    assert "models/glm-5.3" in names and "models/glm-5.3-flash" in names
    assert len(names) == len(set(names))
    for model in models:
        assert "generateContent" in (model.supported_actions or ())
        assert "streamGenerateContent" in (model.supported_actions or ())
        assert model.input_token_limit and model.output_token_limit
        assert model.input_token_limit >= model.output_token_limit
    glm = gemini.call("get", model="glm-5.3")
    assert glm.name == "models/glm-5.3" and glm.display_name
    routed = gemini.call("get", model=MODEL)  # a Gemini name shows the GLM model it uses
    assert routed.name == f"models/{MODEL}"
    assert routed.display_name == glm.display_name
    assert routed.output_token_limit == glm.output_token_limit


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
def test_invalid_argument_names_the_field(
    bridge: RunningServer, sim: RunningServer, mode: str, streamed: bool
) -> None:
    before = len(chats(sim))
    config = types.GenerateContentConfig(candidate_count=2)
    with pytest.raises(errors.ClientError) as info:
        Gemini(bridge.url, mode).answer(streamed, contents="hi", config=config)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "candidateCount" in (info.value.message or "")
    assert len(chats(sim)) == before


def test_invalid_body_is_a_google_400(bridge: RunningServer) -> None:
    path = method_path("generateContent")
    response = httpx2.post(f"{bridge.url}{path}", content=b"{not json", timeout=30)
    assert_google_error(response, 400, "INVALID_ARGUMENT")
    response = post(bridge.url, {"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}, path)
    error = assert_google_error(response, 400, "INVALID_ARGUMENT")
    assert "contents.0.role" in error["message"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("streamed", [False, True])
def test_rate_limit_is_resource_exhausted(bridge: RunningServer, mode: str, streamed: bool) -> None:
    with pytest.raises(errors.ClientError) as info:
        Gemini(bridge.url, mode).answer(streamed, contents="hi [[sim:error:1302]]")
    err = info.value
    assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED"
    assert "1302" in (err.message or "")
    details = err.details["error"]["details"]
    (error_info,) = [d for d in details if d["@type"] == INFO]
    assert error_info["metadata"] == {"upstream_code": "1302"}
    assert not [d for d in details if d["@type"] == QUOTA]  # a passing limit: retry later


@pytest.mark.parametrize("mode", MODES)
def test_spent_quota_carries_a_quota_failure(bridge: RunningServer, mode: str) -> None:
    with pytest.raises(errors.ClientError) as info:
        Gemini(bridge.url, mode).generate(contents="hi [[sim:error:1308]]")
    err = info.value
    assert err.code == 429 and err.status == "RESOURCE_EXHAUSTED"
    (quota,) = [d for d in err.details["error"]["details"] if d["@type"] == QUOTA]
    (violation,) = quota["violations"]
    # gemini-cli stops retrying at once on a "PerDay" quota id
    assert "PerDay" in violation["quotaId"] and "1308" in violation["description"]


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_unknown_method_is_a_google_404(bridge: RunningServer, version: str) -> None:
    response = post(bridge.url, user_body("hi"), method_path("nope", version))
    error = assert_google_error(response, 404, "NOT_FOUND")
    assert ":nope" in error["message"]
    response = post(bridge.url, user_body("hi"), f"/{version}/models/{MODEL}")  # no method
    assert_google_error(response, 404, "NOT_FOUND")


@pytest.fixture
def guarded(start_server: Start, sim: RunningServer, bridge_settings: MakeSettings) -> Any:
    """A bridge that wants ``TOKEN``."""
    return start_server(create_app(bridge_settings(sim.url, auth_token=TOKEN)))


@pytest.mark.parametrize("api_version", VERSIONS)
def test_auth_token_through_the_sdk(guarded: RunningServer, api_version: str | None) -> None:
    good = Gemini(guarded.url, "sync", api_version, api_key=TOKEN)
    assert good.generate(contents="hi [[sim:text]]").text == "You said: hi [[sim:text]]"
    assert good.call("count_tokens", model=MODEL, contents="hi").total_tokens
    for mode in MODES:
        with pytest.raises(errors.ClientError) as info:
            Gemini(guarded.url, mode, api_version, api_key="wrong").generate(contents="hi")
        assert info.value.code == 401 and info.value.status == "UNAUTHENTICATED"


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_auth_token_in_any_google_place(guarded: RunningServer, version: str) -> None:
    path = method_path("generateContent", version)
    accepted: list[dict[str, Any]] = [
        {"headers": {"x-goog-api-key": TOKEN}},
        {"params": {"key": TOKEN}},
        {"headers": {"authorization": f"Bearer {TOKEN}"}},
    ]
    for how in accepted:
        response = post(guarded.url, user_body("hi [[sim:text]]"), path, **how)
        assert response.status_code == 200, (how, response.text)
    refused: list[dict[str, Any]] = [
        {"headers": {"x-goog-api-key": "wrong"}},
        {"params": {"key": "wrong"}},
        {"headers": {"authorization": "Bearer wrong"}},
        {},
    ]
    for how in refused:
        response = post(guarded.url, user_body("hi"), path, **how)
        assert_google_error(response, 401, "UNAUTHENTICATED")
    response = httpx2.get(f"{guarded.url}/v1beta/models", headers={"x-goog-api-key": "no"})
    assert_google_error(response, 401, "UNAUTHENTICATED")
    response = httpx2.get(f"{guarded.url}/v1beta/models", headers={"x-goog-api-key": TOKEN})
    assert response.status_code == 200 and response.json()["models"]


def test_auth_token_for_models_on_v1(guarded: RunningServer) -> None:
    """google-genai lists models on /v1 (its default api_version): its key is read there, and
    a refusal is Google-shaped."""
    gemini = Gemini(guarded.url, "sync", api_key=TOKEN)
    assert "models/glm-5.3" in [m.name for m in gemini.call("list")]
    response = httpx2.get(f"{guarded.url}/v1/models", headers={"x-goog-api-key": "no"})
    assert_google_error(response, 401, "UNAUTHENTICATED")


# --- streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", ["network_error", "cut"])
def test_mid_stream_failure_raises_in_the_sdk(
    bridge: RunningServer, mode: str, scenario: str
) -> None:
    chunks: list[types.GenerateContentResponse] = []
    with pytest.raises(errors.APIError) as info:
        Gemini(bridge.url, mode).stream(chunks, contents=f"hi [[sim:{scenario}]]")
    assert info.value.code == 500 and info.value.status == "INTERNAL"
    assert chunks, "the error came before any content"
    assert "".join(c.text or "" for c in chunks).startswith("The quick")
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks)


def test_sse_stream_is_data_frames_only(bridge: RunningServer) -> None:
    path = method_path("streamGenerateContent") + "?alt=sse"
    body = user_body("hi [[sim:thinking]]", generationConfig={
        "thinkingConfig": {"includeThoughts": True}})  # fmt: skip
    response = post(bridge.url, body, path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    folded = check_grammar(response.content, "sse", include_thoughts=True)
    assert folded["candidates"][0]["finishReason"] == "STOP"
    chunks = sse_frames(response.content)
    assert len(chunks) > 3
    for chunk in chunks:
        assert_chunk(chunk)
    assert len({c["responseId"] for c in chunks}) == 1
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert any(p.get("thought") for p in parts)
    assert chunk_text(chunks) == "You said: hi [[sim:thinking]]"
    *body_chunks, last = chunks
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["totalTokenCount"] > 0
    assert all("finishReason" not in c["candidates"][0] for c in body_chunks)
    assert all("usageMetadata" not in c for c in body_chunks)


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_stream_without_alt_is_one_json_array(bridge: RunningServer, version: str) -> None:
    response = post(bridge.url, user_body("hi [[sim:long:6]]"),
                    method_path("streamGenerateContent", version))  # fmt: skip
    assert response.status_code == 200, response.text
    assert "error" not in check_grammar(response.content, "array")
    assert response.content.startswith(b"[") and response.content.endswith(b"]")
    chunks = json.loads(response.content)
    assert isinstance(chunks, list) and len(chunks) >= 6
    for chunk in chunks:
        assert_chunk(chunk)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunk_text(chunks).startswith("The quick brown fox")


@pytest.mark.parametrize("alt", [True, False])
def test_stream_with_a_function_call(bridge: RunningServer, alt: bool) -> None:
    tools = [{"functionDeclarations": [{"name": "get_weather",
                                        "parametersJsonSchema": WEATHER_SCHEMA}]}]  # fmt: skip
    path = method_path("streamGenerateContent") + ("?alt=sse" if alt else "")
    response = post(bridge.url, user_body("weather? [[sim:tool]]", tools=tools), path)
    assert response.status_code == 200, response.text
    folded = check_grammar(response.content, "sse" if alt else "array")
    assert "functionCall" in folded["candidates"][0]["content"]["parts"][-1]
    chunks = sse_frames(response.content) if alt else json.loads(response.content)
    calls = [p["functionCall"] for c in chunks for p in c["candidates"][0]["content"]["parts"]
             if "functionCall" in p]  # fmt: skip
    (call,) = calls  # one whole call, args an object
    assert call["name"] == "get_weather" and call["args"] == {"location": "Paris"}
    assert call["id"].startswith("call_")


def test_raw_mid_stream_error_is_a_bare_error_object(bridge: RunningServer) -> None:
    body = user_body("hi [[sim:network_error]]")
    sse = post(bridge.url, body, method_path("streamGenerateContent") + "?alt=sse")
    assert sse.status_code == 200
    head, sep, tail = sse.content.rpartition(b"\n\n")
    assert sep and tail.startswith(b'{"error":') and tail.endswith(b"}\n")
    assert tail.count(b"\n") == 1  # one line, no "data: " (the JS SDK only raises on this)
    assert json.loads(tail)["error"]["status"] == "INTERNAL"
    assert sse_frames(head + sep)
    assert check_grammar(sse.content, "sse")["error"]["code"] == 500
    array = post(bridge.url, body, method_path("streamGenerateContent"))
    items = json.loads(array.content)
    assert "error" in items[-1] and items[-1]["error"]["code"] == 500
    assert all("candidates" in item for item in items[:-1])
    assert check_grammar(array.content, "array")["error"]["status"] == "INTERNAL"


def test_idle_stream_sends_no_keepalive(
    start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    """Early commit and idle pings send nothing a Gemini SDK would trip on."""
    server = start_server(create_app(bridge_settings(sim.url, commit_after=0, ping_interval=0.05)))
    slow = directive(text="slow answer here", chunk_size=4, delay=0.12)
    for alt in (True, False):
        path = method_path("streamGenerateContent") + ("?alt=sse" if alt else "")
        response = post(server.url, user_body(f"hi {slow}"), path)
        assert response.status_code == 200
        chunks = sse_frames(response.content) if alt else json.loads(response.content)
        assert chunk_text(chunks) == "slow answer here"
        check_grammar(response.content, "sse" if alt else "array")
    # After an early commit a failure before any content is a bare error object; the SDK raises.
    with pytest.raises(errors.ClientError) as info:
        Gemini(server.url, "sync").stream(contents="hi [[sim:error:1302]]")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    body = user_body("hi [[sim:error:1302]]")
    sse = post(server.url, body, method_path("streamGenerateContent") + "?alt=sse")
    assert sse.status_code == 200 and sse.content.count(b"\n") == 1
    assert json.loads(sse.content)["error"]["code"] == 429
    assert check_grammar(sse.content, "sse")["error"]["code"] == 429
    array = post(server.url, body, method_path("streamGenerateContent"))
    assert array.status_code == 200
    ((key, error),) = json.loads(array.content)[0].items()
    assert key == "error" and error["status"] == "RESOURCE_EXHAUSTED"
    assert len(json.loads(array.content)) == 1
    check_grammar(array.content, "array")


def test_snake_case_body_matches_camel_case(bridge: RunningServer, sim: RunningServer) -> None:
    camel = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "hello [[sim:tool]]"}]}],
        "tools": [{"functionDeclarations": [{
            "name": "get_weather", "description": "Weather",
            "parametersJsonSchema": {"type": "object", "properties": {
                "location_name": {"type": "string"}}, "required": ["location_name"]}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                 "allowedFunctionNames": ["get_weather"]}},
        "generationConfig": {"maxOutputTokens": 300, "topP": 0.5, "stopSequences": ["END"],
                             "thinkingConfig": {"thinkingBudget": 0}},
    }  # fmt: skip
    snake = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "hello [[sim:tool]]"}]}],
        "tools": [{"function_declarations": [{
            "name": "get_weather", "description": "Weather",
            "parameters_json_schema": {"type": "object", "properties": {
                "location_name": {"type": "string"}}, "required": ["location_name"]}}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY",
                                                    "allowed_function_names": ["get_weather"]}},
        "generation_config": {"max_output_tokens": 300, "top_p": 0.5, "stop_sequences": ["END"],
                              "thinking_config": {"thinking_budget": 0}},
    }  # fmt: skip
    answers, upstream = [], []
    for body in (camel, snake):
        response = post(bridge.url, body, method_path("generateContent"))
        assert response.status_code == 200, response.text
        answers.append(response.json()["candidates"])
        upstream.append(last_chat(sim))
    assert answers[0][0]["content"]["parts"][0]["functionCall"]["args"] == {
        "location_name": "Paris"}  # fmt: skip
    for candidates in answers:  # call ids are made per answer
        candidates[0]["content"]["parts"][0]["functionCall"].pop("id")
    assert answers[0] == answers[1]
    assert upstream[0] == upstream[1]
    sent = upstream[0]
    assert sent["max_tokens"] == 300 and sent["top_p"] == 0.5 and sent["stop"] == ["END"]
    assert "thinking" not in sent  # budget 0 on GLM-5.3, which cannot stop thinking
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert "must call the `get_weather` tool" in system["content"]  # toolConfig ANY, one name
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["location_name"]
