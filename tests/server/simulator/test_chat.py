"""The GLM simulator reproduces Z.ai GLM's documented wire behaviour (wire-specs section A)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from starlette.testclient import TestClient

from glmbridge_server.simulator import (
    Script,
    ScriptError,
    ScriptToolCall,
    create_simulator_app,
)

AUTH = {"Authorization": "Bearer test.key"}
URL = "/api/paas/v4/chat/completions"
BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "Bash",
        "description": "Run a shell command",
        "parameters": {
            "type": "object",
            "required": ["command"],
            "properties": {
                "command": {"type": "string"},
                "description": {"type": "string"},
                "timeout": {"type": "number"},
            },
        },
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        },
    },
}
ID_RE = re.compile(r"^\d{14}[0-9a-f]{16}$")
CALL_RE = re.compile(r"^call_[0-9a-f]{24}$")


@pytest.fixture
def app():
    return create_simulator_app(invalid_keys={"bad.key"}, quota_keys={"broke.key"})


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "glm-4.7", "messages": [{"role": "user", "content": text}], **extra}


def post(
    client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None, url: str = URL
):
    return client.post(url, json=body, headers={**AUTH, **(headers or {})})


def sse(text: str) -> list[dict[str, Any]]:
    """Parse a raw GLM SSE body strictly: only `data:` events, ended by [DONE]."""
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    blocks = text.split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
    out = []
    for block in blocks[:-2]:
        assert block.startswith("data: ") and "\n" not in block, block
        out.append(json.loads(block[len("data: ") :]))
    return out


def stream(client: TestClient, body: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    r = post(client, {**body, "stream": True}, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream;charset=UTF-8"
    assert "event:" not in r.text
    return sse(r.text)


def deltas(events: list[dict[str, Any]], key: str) -> str:
    return "".join(e["choices"][0]["delta"].get(key) or "" for e in events)


def error_of(r) -> tuple[int, str]:
    err = r.json()["error"]
    assert isinstance(err["code"], str) and err["message"]
    return r.status_code, err["code"]


# ---------------------------------------------------------------------------- routes and auth


@pytest.mark.parametrize("prefix", ["", "/v4", "/paas/v4", "/api/paas/v4", "/api/coding/paas/v4"])
def test_all_base_paths_serve_chat_and_tokenizer(client, prefix):
    assert post(client, user("hi"), url=f"{prefix}/chat/completions").status_code == 200
    assert post(client, {**user("hi"), "model": "glm-4.6"},
                url=f"{prefix}/tokenizer").status_code == 200  # fmt: skip


def test_health_and_unknown_path(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.post("/api/paas/v4/nope", headers=AUTH)
    # golden: the plain Spring-style 404 body, no business code (Wei-Shaw/sub2api#5892)
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"timestamp", "status", "error", "path"}
    assert (body["status"], body["error"], body["path"]) == (404, "Not Found", "/api/paas/v4/nope")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (401, "1001")),
        ({"Authorization": "Bearer "}, (401, "1001")),
        ({"Authorization": "Bearer bad.key"}, (401, "1002")),
        ({"Authorization": "Bearer broke.key"}, (429, "1113")),
    ],
)
def test_auth_errors(client, headers, expected):
    r = client.post(URL, json=user("hi"), headers=headers)
    assert error_of(r) == expected


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "1213"),
        ({"model": "glm-4.7"}, "1213"),
        ({"model": "glm-4.7", "messages": []}, "1213"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, "1211"),
        (user("x", stop=["a", "b", "c", "d", "e"]), "1214"),  # OAS: maxItems 4
        (user("x", tool_choice="required"), "1214"),
        (user("x", tool_choice={"type": "function", "function": {"name": "f"}}), "1214"),
        (user("x", max_tokens=131073), "1214"),
        ({**user("x"), "model": "glm-4.5v", "max_tokens": 16385}, "1214"),
        (user("x", temperature=1.5), "1214"),
        (user("x", thinking={"type": "auto"}), "1214"),
        (user("x", response_format={"type": "json_schema"}), "1214"),
        ({"model": "glm-4.7", "messages": [{"role": "system", "content": "be nice"}]}, "1214"),
        ({"model": "glm-4.7", "messages": [{"role": "robot", "content": "x"}]}, "1214"),
        (
            {
                "model": "glm-4.7",
                "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "out"}],
            },
            "1214",
        ),
        (
            {
                "model": "glm-4.7",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this"},
                            {"type": "image_url", "image_url": {"url": "aGVsbG8="}},
                        ],
                    }
                ],
            },
            "1214",
        ),
        (user("x", tools=[{"type": "function", "function": {"name": "bad name"}}]), "1214"),
    ],
)
def test_invalid_requests_are_rejected_like_glm(client, body, expected):
    assert error_of(post(client, body)) == (400, expected)


def test_invalid_json_body(client):
    r = client.post(URL, content=b"{not json", headers=AUTH)
    assert error_of(r) == (400, "1214")


def test_accepted_variants(client):
    image = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "aGVsbG8="}},
    ]
    ok = [
        user(
            "x",
            tool_choice="auto",
            stop=["END"],
            max_tokens=131072,
            stream_options={"include_usage": True},
            parallel_tool_calls=True,
        ),
        {"model": "GLM-4.6V", "messages": [{"role": "user", "content": image}]},
        {
            "model": "glm-4.7",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "text parts are fine on text models"}],
                }
            ],
        },
    ]
    for body in ok:
        assert post(client, body).status_code == 200, body


def test_prompt_longer_than_context_window_is_1261(client):
    body = {**user("word " * 70_000), "model": "glm-4.5v"}  # 64K context; a token a word
    assert error_of(post(client, body)) == (400, "1261")


# ---------------------------------------------------------------------------- non-streaming


def test_non_stream_text_shape(client):
    before = int(time.time())
    data = post(client, user("Hello simulator", model="GLM-4.7")).json()
    assert "object" not in data
    assert ID_RE.match(data["id"]) and data["id"] == data["request_id"]
    assert before <= data["created"] <= time.time() + 1
    assert data["model"] == "glm-4.7"
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "stop" and "object" not in choice
    msg = choice["message"]
    assert msg["role"] == "assistant"
    assert msg["content"] == "You said: Hello simulator"
    assert msg["reasoning_content"].startswith("\n") and len(msg["reasoning_content"]) > 10
    assert "tool_calls" not in msg
    usage = data["usage"]
    assert set(usage) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
    }
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_usage_is_estimated_from_the_request(client):
    small = post(client, user("hi")).json()["usage"]["prompt_tokens"]
    big = post(client, user("hi " * 400)).json()["usage"]["prompt_tokens"]
    # GLM's tokenizer and template: 13 and 413 tokens (tests/fixtures/token_counts)
    assert 9 <= small <= 17 and 372 <= big <= 454


def test_client_request_id_is_echoed(client):
    data = post(client, user("hi", request_id="my-request-0001")).json()
    assert data["id"] == data["request_id"] == "my-request-0001"


def test_non_stream_tool_call_shape(client):
    body = user("please run `ls -la`", tools=[BASH_TOOL])
    data = post(client, body).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "\n\n"
    (call,) = msg["tool_calls"]
    assert call["index"] == 0 and CALL_RE.match(call["id"]) and call["type"] == "function"
    assert call["function"]["name"] == "Bash"
    assert isinstance(call["function"]["arguments"], str)
    args = json.loads(call["function"]["arguments"])
    assert args["command"] == "ls -la" and args["description"]


def test_thinking_disabled_and_non_thinking_models_have_no_reasoning(client):
    for body in (
        user("hi", thinking={"type": "disabled"}),
        {**user("hi"), "model": "glm-4-32b-0414-128k"},
    ):
        msg = post(client, body).json()["choices"][0]["message"]
        assert "reasoning_content" not in msg and msg["content"] == "You said: hi"
        events = stream(client, body)
        assert deltas(events, "reasoning_content") == ""
        assert all("reasoning_content" not in e["choices"][0]["delta"] for e in events)


def test_max_tokens_truncates_text_with_length(client):
    body = user("x" * 400, thinking={"type": "disabled"}, max_tokens=5)
    data = post(client, body).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["choices"][0]["message"]["content"] == ("You said: " + "x" * 200)[:20]
    assert data["usage"]["completion_tokens"] == 5


def test_max_tokens_can_cut_a_tool_call_arguments(client, app):
    app.state.script_queue.append(
        Script(tool_calls=[ScriptToolCall(name="Bash", arguments={"command": "x" * 100})])
    )
    data = post(client, user("go", tools=[BASH_TOOL], max_tokens=8)).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    args = choice["message"]["tool_calls"][0]["function"]["arguments"]
    assert len(args) == 32 and args.startswith('{"command":"xxx')
    with pytest.raises(json.JSONDecodeError):
        json.loads(args)


def test_stop_word_ends_text(client):
    r = post(client, user("alpha STOP beta", thinking={"type": "disabled"}, stop=["STOP"]))
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "You said: alpha " and choice["finish_reason"] == "stop"


def test_json_object_mode_answers_json(client):
    msg = post(client, user("hi", response_format={"type": "json_object"})).json()
    assert json.loads(msg["choices"][0]["message"]["content"]) == {"reply": "You said: hi"}


# ---------------------------------------------------------------------------- streaming


def test_stream_text_quirks(client):
    body = user("Hello streaming world")
    events = stream(client, body)
    assert len(events) > 5
    ids = {e["id"] for e in events}
    assert len(ids) == 1 and ID_RE.match(ids.pop())
    for e in events:
        assert "object" not in e and "request_id" not in e
        assert e["model"] == "glm-4.7" and isinstance(e["created"], int)
        (choice,) = e["choices"]
        assert choice["delta"]["role"] == "assistant"  # repeated on every delta
    assert events[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "\n",
    }
    # reasoning fragments strictly before content fragments
    kinds = [
        ("r" if "reasoning_content" in e["choices"][0]["delta"] else "c") for e in events[1:-1]
    ]
    assert kinds == sorted(kinds, key=lambda k: k == "c") and "r" in kinds and "c" in kinds
    assert all(e["choices"][0]["finish_reason"] is None and "usage" not in e for e in events[:-1])
    last = events[-1]
    assert last["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": "stop",
    }
    assert last["usage"]["completion_tokens"] > 0
    # the stream says the same as the non-stream answer
    msg = post(client, body).json()["choices"][0]["message"]
    assert deltas(events, "content") == msg["content"]
    assert deltas(events, "reasoning_content") == msg["reasoning_content"]


def test_stream_whole_tool_call_doubles_finish_reason(client):
    events = stream(client, user("run `echo hi`", tools=[BASH_TOOL]))
    tool_events = [e for e in events if "tool_calls" in e["choices"][0]["delta"]]
    (tool_event,) = tool_events
    assert tool_event["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in tool_event
    (call,) = tool_event["choices"][0]["delta"]["tool_calls"]
    assert call["index"] == 0 and CALL_RE.match(call["id"]) and call["type"] == "function"
    assert json.loads(call["function"]["arguments"])["command"] == "echo hi"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "usage" in events[-1] and events[-2] is tool_event


def test_golden_parallel_calls_one_chunk_each_with_early_finish(client):
    # Recorded Coding Plan shape (zai-fidelity 3.5, W45): without tool_stream, each parallel
    # call is a chunk of its own, without role, already carrying finish_reason tool_calls.
    events = stream(client, user("[[sim:parallel_tools]]", tools=[BASH_TOOL, WEATHER_TOOL]))
    tool_events = [e for e in events if "tool_calls" in e["choices"][0]["delta"]]
    assert len(tool_events) == 2
    for i, event in enumerate(tool_events):
        choice = event["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and "usage" not in event
        (call,) = choice["delta"]["tool_calls"]
        assert set(choice["delta"]) == {"tool_calls"}  # no role on tool-call chunks
        assert call["index"] == i and CALL_RE.match(call["id"])
    assert [e["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] for e in tool_events] == [
        "Bash",
        "get_weather",
    ]
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls" and "usage" in events[-1]
    # the non-stream answer holds the same calls
    msg = post(client, user("[[sim:parallel_tools]]", tools=[BASH_TOOL, WEATHER_TOOL]))
    names = [c["function"]["name"] for c in msg.json()["choices"][0]["message"]["tool_calls"]]
    assert names == ["Bash", "get_weather"]


def test_tool_stream_fragments_and_parallel_indices(client):
    body = user("[[sim:parallel_tools]]", tools=[BASH_TOOL, WEATHER_TOOL], tool_stream=True)
    events = stream(client, body)
    frags = [
        (e["choices"][0]["delta"]["tool_calls"], e["choices"][0]["finish_reason"])
        for e in events
        if "tool_calls" in e["choices"][0]["delta"]
    ]
    assert all(fr is None for _, fr in frags)  # no doubled finish_reason with tool_stream
    calls: dict[int, dict[str, Any]] = {}
    for (tc,), _ in frags:
        if "id" in tc:
            assert tc["index"] not in calls and tc["function"]["arguments"] == ""
            assert CALL_RE.match(tc["id"]) and tc["type"] == "function"
            calls[tc["index"]] = {"name": tc["function"]["name"], "args": ""}
        else:
            assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
            calls[tc["index"]]["args"] += tc["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "Bash" and calls[1]["name"] == "get_weather"
    assert json.loads(calls[1]["args"]) == {"city": "Paris"}
    assert sum(1 for (tc,), _ in frags if "id" not in tc) > 2
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls" and "usage" in events[-1]


def test_tool_stream_ignored_without_stream(client):
    body = user("[[sim:tool]]", tools=[WEATHER_TOOL], tool_stream=True)
    msg = post(client, body).json()["choices"][0]["message"]
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("scenario", "reason", "fragments"),
    [("network_error", "network_error", 3), ("sensitive", "sensitive", 2)],
)
def test_mid_stream_failures_are_finish_reasons(client, scenario, reason, fragments):
    events = stream(
        client, user("hi", thinking={"type": "disabled"}), headers={"x-sim-scenario": scenario}
    )
    assert len(events) == 1 + fragments + 1  # priming chunk, fragments, final
    assert events[-1]["choices"][0]["finish_reason"] == reason and "usage" in events[-1]
    assert all("error" not in e for e in events)
    data = post(client, user("hi"), {"x-sim-scenario": scenario}).json()
    assert data["choices"][0]["finish_reason"] == reason


def test_length_and_context_window_scenarios(client):
    assert stream(client, user("[[sim:length]]"))[-1]["choices"][0]["finish_reason"] == "length"
    events = stream(client, user("[[sim:context_window]]"))
    assert events[-1]["choices"][0]["finish_reason"] == "model_context_window_exceeded"


def test_cut_closes_without_done(client):
    r = post(client, user("hi", stream=True), {"x-sim-scenario": "cut"})
    assert r.status_code == 200 and "[DONE]" not in r.text and "usage" not in r.text
    assert r.text.count("data: ") == 4
    r = post(client, user("hi"), {"x-sim-scenario": "cut"})
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_long_stream_is_fast(client):
    t0 = time.perf_counter()
    events = stream(client, user("[[sim:long:2000]]"))
    elapsed = time.perf_counter() - t0
    content = [e for e in events if e["choices"][0]["delta"].get("content")]
    assert len(content) == 2000
    assert elapsed < 3.0, elapsed


# ---------------------------------------------------------------------------- errors by script


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        ("error:1302", 429),
        ("error:1261", 400),
        ("error:1113", 429),
        ("error:1002", 401),
        ("error:500", 500),
        ("error:1305", 429),
    ],
)
def test_business_code_errors(client, scenario, status):
    assert error_of(post(client, user("hi"), {"x-sim-scenario": scenario})) == (
        status,
        scenario.split(":")[1],
    )
    assert error_of(post(client, user(f"please [[sim:{scenario}]]", stream=True))) == (
        status,
        scenario.split(":")[1],
    )


def test_unknown_scenario_and_bad_script_are_loud(client):
    assert error_of(post(client, user("[[sim:nonsense]]")))[0] == 400
    assert error_of(post(client, user("hi"), {"x-sim-script": '{"bogus": 1}'}))[0] == 400
    assert error_of(post(client, user('[[sim:{"text": 1}]]')))[0] == 400


# ---------------------------------------------------------------------------- script selection


def test_header_script_wins_over_directive_and_queue(client, app):
    app.state.script_queue.append(Script(text="from queue"))
    r = post(client, user("[[sim:text]]"), {"x-sim-script": json.dumps({"text": "from header"})})
    assert r.json()["choices"][0]["message"]["content"] == "from header"
    r = post(client, user("[[sim:thinking]] hello"))
    assert r.json()["choices"][0]["message"]["content"] == "You said: [[sim:thinking]] hello"
    assert len(app.state.script_queue) == 1


def test_json_directive_in_last_user_message(client):
    text = 'Claude says [[sim:{"text": "scripted [[x]]", "reasoning": "hmm"}]] now'
    body = {
        "model": "glm-4.6",
        "messages": [
            {"role": "system", "content": "You are Claude Code."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>r</system-reminder>"},
                    {"type": "text", "text": text},
                ],
            },
        ],
    }
    msg = post(client, body).json()["choices"][0]["message"]
    assert msg["content"] == "scripted [[x]]" and msg["reasoning_content"] == "\nhmm"


def test_script_queue_is_fifo(client, app):
    app.state.script_queue.extend([Script(text="one"), Script(text="two")])
    texts = [post(client, user("hi")).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert texts == ["one", "two", "You said: hi"]


def test_app_default_script_and_script_error(client):
    app = create_simulator_app(default_script=Script(text="always this", reasoning=""))
    with TestClient(app) as c:
        msg = post(c, user("hi")).json()["choices"][0]["message"]
        assert msg == {"role": "assistant", "content": "always this"}
        app.state.script_queue.append(Script(error=ScriptError(status=503, code="1312")))
        assert error_of(post(c, user("hi"))) == (503, "1312")


def test_transport_only_script_keeps_default_content(client):
    r = post(client, user("hi", stream=True), {"x-sim-script": '{"chunk_count": 7}'})
    events = sse(r.text)
    assert deltas(events, "content").startswith("You said: hi")
    assert sum(1 for e in events if e["choices"][0]["delta"].get("content")) == 7


# ---------------------------------------------------------------------------- default behaviour


def conversation(*, directive: str = "") -> list[dict[str, Any]]:
    call = {
        "id": "call_0123456789abcdef01234567",
        "type": "function",
        "function": {"name": "Bash", "arguments": '{"command":"ls"}'},
    }
    return [
        {"role": "user", "content": f"list files {directive}"},
        {"role": "assistant", "content": "\n\n", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "a.txt\nb.txt"},
    ]


def test_default_quotes_tool_result_and_directive_does_not_loop(client):
    for msgs in (conversation(), conversation(directive="[[sim:bash:ls]]")):
        body = {"model": "glm-4.7", "messages": msgs, "tools": [BASH_TOOL]}
        data = post(client, body).json()
        choice = data["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["content"] == "The command output was:\na.txt\nb.txt"


def test_default_bash_call_from_directive_and_text_without_tools(client):
    msg = post(client, user("[[sim:bash:git status]]", tools=[BASH_TOOL])).json()
    args = json.loads(msg["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert args == {"command": "git status", "description": "Run git status"}
    # no tools offered (e.g. a title-generation side request): plain text instead
    msg = post(client, user("[[sim:bash:git status]]")).json()["choices"][0]["message"]
    assert "tool_calls" not in msg and msg["content"].startswith("You said:")


def test_prompt_cache_reports_seen_prefix(client):
    first = {
        "model": "glm-4.7",
        "messages": conversation()[:1]
        + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}],
    }
    u1 = post(client, first).json()["usage"]
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    second = {
        "model": "glm-4.7",
        "messages": first["messages"]
        + [{"role": "assistant", "content": "sure"}, {"role": "user", "content": "more"}],
    }
    u2 = post(client, second).json()["usage"]
    cached = u2["prompt_tokens_details"]["cached_tokens"]
    assert cached == u1["prompt_tokens"] and 0 < cached < u2["prompt_tokens"]


# ---------------------------------------------------------------------------- tokenizer, log


def test_tokenizer(client):
    data = post(client, {**user("hello " * 100), "model": "glm-4.6"},
                url="/api/paas/v4/tokenizer").json()  # fmt: skip
    assert set(data) == {"id", "created", "request_id", "usage"}
    assert data["id"] == data["request_id"]
    u = data["usage"]
    assert u["image_tokens"] == u["video_tokens"] == 0 and u["total_tokens"] == u["prompt_tokens"]
    assert u["prompt_tokens"] == post(client, user("hello " * 100)).json()["usage"]["prompt_tokens"]
    vision = {
        "model": "glm-4.6v",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what"},
                    {"type": "image_url", "image_url": {"url": "eA=="}},
                ],
            }
        ],
    }
    u = post(client, vision, url="/tokenizer").json()["usage"]
    assert u["image_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["image_tokens"]
    assert error_of(post(client, {"model": "nope", "messages": []}, url="/tokenizer"))[1] == "1211"
    # golden: only the documented tokenizer models and roles (OAS TokenizerRequest)
    assert error_of(post(client, user("x"), url="/tokenizer")) == (400, "1214")  # glm-4.7
    tool = {"model": "glm-4.6", "messages": [{"role": "tool", "content": "x",
                                              "tool_call_id": "c"}]}  # fmt: skip
    assert error_of(post(client, tool, url="/tokenizer")) == (400, "1214")
    assert error_of(client.post("/tokenizer", json=user("x")))[1] == "1001"


def test_request_log(client, app):
    client.delete("/_sim/requests")
    post(client, user("first"))
    post(client, user("second", stream=True))
    logged = client.get("/_sim/requests").json()
    assert [m["messages"][0]["content"] for m in logged] == ["first", "second"]
    assert app.state.requests == logged
    assert client.delete("/_sim/requests").json() == {"cleared": 2}
    assert client.get("/_sim/requests").json() == []


# ---------------------------------------------------------------------------- cancellation


async def _drive(app, body: dict[str, Any], disconnect_after: int) -> list[dict[str, Any]]:
    """Run the ASGI app directly; the client disconnects after N body messages."""
    sent: list[dict[str, Any]] = []
    enough = anyio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await enough.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if sum(m["type"] == "http.response.body" for m in sent) >= disconnect_after:
            enough.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer k"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("sim", 80),
    }
    with anyio.fail_after(5):
        await app(scope, receive, send)
    return sent


def test_client_disconnect_cancels_stream(app):
    sent = anyio.run(_drive, app, user("hi", stream=True, max_tokens=100), 3)
    assert app.state.cancelled == 0  # a fast stream may finish before the disconnect lands
    app.state.script_queue.append(Script(text="x" * 400, delay=0.05))
    t0 = time.perf_counter()
    sent = anyio.run(_drive, app, user("hi", stream=True), 3)
    assert time.perf_counter() - t0 < 1.0  # not the 50 chunks * 0.05 s of the full answer
    assert app.state.cancelled == 1 and app.state.active_streams == 0
    assert not any(m.get("more_body") is False for m in sent)


@pytest.mark.e2e
def test_real_server_disconnect_is_counted(app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        with (
            httpx2.Client(base_url=base, headers=AUTH) as c,
            c.stream(
                "POST", URL, json=user("hi", stream=True), headers={"x-sim-scenario": "slow:0.2"}
            ) as r,
        ):
            assert r.status_code == 200
            chunks = r.iter_bytes()  # keep a reference: dropping it closes the connection
            assert next(chunks).startswith(b"data: {")
            assert app.state.active_streams == 1 and app.state.cancelled == 0
        deadline = time.monotonic() + 5
        while app.state.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.cancelled == 1 and app.state.active_streams == 0
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def test_queued_scripts_are_validated_and_may_nest_dicts(client, app):
    app.state.script_queue.append(Script(error={"status": 429, "code": "1302"}))  # type: ignore[arg-type]
    assert error_of(post(client, user("hi"))) == (429, "1302")
    app.state.script_queue.append({"tool_calls": [{"name": "Bash", "arguments": '{"command":'}]})
    call = post(client, user("hi")).json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "Bash", "arguments": '{"command":'}
    app.state.script_queue.append(Script(chunk_size="big"))  # type: ignore[arg-type]
    assert error_of(post(client, user("hi")))[0] == 400


# --- recorded shapes of the real API (issue 11; zai-fidelity) ---------------------------------

CODING = "/api/coding/paas/v4/chat/completions"


@pytest.mark.parametrize("content", ["", "  "])
@pytest.mark.parametrize("role", ["user", "tool"])
def test_golden_empty_content_is_1213(client, role, content):
    # GLM-5: 400/1213 for content "" (earendil-works/pi#3309, #3311, curl-verified)
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if role == "tool":
        messages = [
            {"role": "user", "content": "run"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": content},
        ]
    assert error_of(post(client, {"model": "glm-5", "messages": messages})) == (400, "1213")


def test_golden_empty_text_part_is_rejected(client):
    # "messages[0].content[1].text:不能为空" on the coding endpoint (zed-industries/zed#38153)
    parts = [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
        {"type": "text", "text": ""},
    ]
    r = post(
        client,
        {"model": "glm-5.3-flash", "messages": [{"role": "user", "content": parts}]},
        url=CODING,
    )
    assert error_of(r) == (400, "1214") and "不能为空" in r.json()["error"]["message"]


def test_golden_thinking_off_on_glm_5_3_is_1210(client):
    # farion1231/cc-switch#6737; theopenco/llmgateway#3605
    r = post(client, {**user("x"), "model": "glm-5.3", "thinking": {"type": "disabled"}})
    assert error_of(r) == (400, "1210") and "cannot be disabled" in r.json()["error"]["message"]
    assert post(client, {**user("x"), "model": "glm-5.3", "thinking": {"type": "enabled"},
                         "reasoning_effort": "low"}).status_code == 200  # fmt: skip
    # 5.3 accepts only low/high/max (OAS)
    r = post(client, {**user("x"), "model": "glm-5.3", "reasoning_effort": "medium"})
    assert error_of(r) == (400, "1214")


def test_golden_coding_endpoint_serves_its_plan_only(client):
    # unknown model: 400/1214 "modelCode: does not exist" (duolahypercho/codex-router#244)
    r = post(client, {**user("x"), "model": "glm-9"}, url=CODING)
    assert error_of(r) == (400, "1214") and "does not exist" in r.json()["error"]["message"]
    # a real model outside the plan: 429/1113 (zai-org/feedback#789)
    for model in ("glm-4.6v", "glm-4.6v-flashx", "glm-4.7-flashx"):
        assert error_of(post(client, {**user("x"), "model": model}, url=CODING)) == (429, "1113")
    # the plan's models (aaif-goose/goose#11667) are served there; the rest on pay-as-you-go
    for model in ("glm-5.3", "glm-5.3-flash", "glm-5.2", "glm-5-turbo", "glm-4.5-air"):
        assert post(client, {**user("x"), "model": model}, url=CODING).status_code == 200
    assert post(client, {**user("x"), "model": "glm-4.6v"}, url=URL).status_code == 200
    # pay-as-you-go: an unknown model is 1211
    assert error_of(post(client, {**user("x"), "model": "glm-9"}, url=URL)) == (400, "1211")


def test_golden_file_part(client):
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    body = {"model": "glm-4.6v", "messages": [{"role": "user", "content": [pdf]}]}
    assert post(client, body).status_code == 200
    bad = {"type": "file", "file": {"file_data": "JVBERi0="}}  # not a data URL
    body = {"model": "glm-4.6v", "messages": [{"role": "user", "content": [bad]}]}
    assert error_of(post(client, body)) == (400, "1214")
