"""OpenTelemetry traces reach a real OTLP/HTTP receiver, with the inbound trace as parent.

The receiver is a small HTTP server started by the test; it decodes each export with the
OTLP protobuf definitions (``opentelemetry-proto``) exactly as a collector would.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from glmbridge_server.dashboard.otel import Tracing
from glmbridge_server.edge.app import create_app
from glmbridge_server.simulator.scripts import Script, ScriptError
from tests.support.servers import MakeSettings, RunningServer, Start

pytest.importorskip("opentelemetry.sdk")
trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (``POST /v1/traces``, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[tuple[Any, Any]] = []  # (resource, span)
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append((resource_spans.resource, span))
                answer = trace_service.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    for name in ("OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_PROTOCOL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in span.attributes:
        value = item.value
        kind = value.WhichOneof("value")
        out[item.key] = (
            [v.string_value for v in value.array_value.values]
            if kind == "array_value" else getattr(value, kind)
        )  # fmt: skip
    return out


def test_spans_arrive_with_the_inbound_trace_as_parent(
    receiver: Receiver, start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url)))
    tracing = server.app.state.dashboard.tracing
    assert tracing is not None
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16,
            "messages": [{"role": "user", "content": "a private prompt"}]}  # fmt: skip
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    child = httpx2.post(server.url + "/v1/messages", json=body, timeout=30,
                        headers={"traceparent": traceparent})  # fmt: skip
    chat = {"model": "glm-4.7", "messages": [{"role": "user", "content": "x"}]}
    root = httpx2.post(server.url + "/v1/chat/completions", json=chat, timeout=30)
    assert child.status_code == 200 and root.status_code == 200
    assert tracing.flush()
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    exchanges = [(res, s) for res, s in receiver.spans if s.name.startswith("chat ")]
    assert len(exchanges) == 2
    resource, span = next((r, s) for r, s in exchanges if s.name == "chat claude-sonnet-4-5")
    assert span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_ID
    assert span.kind == span.SPAN_KIND_SERVER
    attrs = attributes(span)
    assert attrs["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert attrs["gen_ai.response.model"].startswith("glm-")  # the model that answered
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.response.finish_reasons"] == ["max_tokens"]  # max_tokens: 16
    assert attrs["glmbridge.request_id"] == child.headers["request-id"]
    assert span.end_time_unix_nano > span.start_time_unix_nano
    assert "a private prompt" not in str(span)  # prompts never go into spans
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "glmbridge"
    other = next(s for _, s in exchanges if s.name == "chat glm-4.7")
    assert other.parent_span_id == b"" and other.trace_id.hex() != TRACE_ID  # a new root
    assert attributes(other)["gen_ai.response.finish_reasons"] == ["end_turn"]


def test_tracing_is_off_without_an_endpoint_or_when_disabled() -> None:
    assert Tracing.from_environment({}) is None
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    assert Tracing.from_environment(disabled) is None
    on = Tracing.from_environment({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9"})
    assert on is not None
    on.shutdown()


def test_attempts_and_slot_waits_are_child_spans(
    receiver: Receiver, start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    settings = bridge_settings(sim.url, max_retries=1, key_slots=(1,))
    server = start_server(create_app(settings))
    tracing = server.app.state.dashboard.tracing
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    # a 503, then the retry answers: two attempts under the exchange
    sim.app.state.script_queue.extend([Script(error=ScriptError(status=503, code="503"))])
    retried = httpx2.post(server.url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"traceparent": traceparent})  # fmt: skip
    assert retried.status_code == 200
    # one slot: a slow answer holds it, the next request waits in the queue
    sim.app.state.script_queue.extend([Script(text="slow", chunk_count=8, delay=0.05)])
    slow = threading.Thread(target=httpx2.post, args=(server.url + "/v1/chat/completions",),
                            kwargs={"json": body, "timeout": 30})  # fmt: skip
    slow.start()
    time.sleep(0.1)
    waited = httpx2.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    slow.join()
    assert waited.status_code == 200
    assert tracing.flush()
    spans = [s for _, s in receiver.spans]

    def exchange(request_id: str) -> Any:
        return next(s for s in spans if attributes(s).get("glmbridge.request_id") == request_id)

    def children(parent: Any) -> list[Any]:
        found = [s for s in spans if s.parent_span_id == parent.span_id]
        return sorted(found, key=lambda s: s.start_time_unix_nano)

    first = exchange(retried.headers["request-id"])
    assert first.trace_id.hex() == TRACE_ID and first.parent_span_id.hex() == PARENT_ID
    attempts = [s for s in children(first) if s.name == "upstream attempt"]
    assert [attributes(s)["http.response.status_code"] for s in attempts] == [503, 200]
    assert [attributes(s)["glmbridge.attempt"] for s in attempts] == [1, 2]
    assert attributes(attempts[0])["error.type"] == "overloaded"
    assert attempts[0].kind == attempts[0].SPAN_KIND_CLIENT
    assert all(s.trace_id == first.trace_id for s in attempts)
    for child in attempts:
        assert first.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= first.end_time_unix_nano
    queued = [s for s in children(exchange(waited.headers["request-id"])) if s.name == "queue"]
    assert len(queued) == 1
    assert queued[0].end_time_unix_nano - queued[0].start_time_unix_nano >= 100_000_000  # ≥ 0.1 s


def test_a_server_tool_round_is_a_child_span(
    receiver: Receiver, start_server: Start, sim: RunningServer, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url)))
    sim.app.state.search_quota, sim.app.state.search_calls = None, 0
    body = {
        "model": "claude-sonnet-4-5", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Perform a web search for the query: glmbridge"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        "tool_choice": {"type": "tool", "name": "web_search"},
        "thinking": {"type": "disabled"},
    }  # fmt: skip
    response = httpx2.post(server.url + "/v1/messages", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert server.app.state.dashboard.tracing.flush()
    spans = [s for _, s in receiver.spans]
    rid = response.headers["request-id"]
    root = next(s for s in spans if attributes(s).get("glmbridge.request_id") == rid)
    children = sorted((s for s in spans if s.parent_span_id == root.span_id),
                      key=lambda s: s.start_time_unix_nano)  # fmt: skip
    names = [s.name for s in children]
    assert names.count("upstream attempt") == 2, names  # the round that searches, the answer
    (tool_round,) = [s for s in children if s.name == "server tool round"]
    assert attributes(tool_round)["glmbridge.tools"] == ["web_search"]
    assert names.index("server tool round") == 1  # between the two upstream rounds
