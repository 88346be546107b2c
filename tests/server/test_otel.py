"""OpenTelemetry traces reach a real OTLP/HTTP receiver, with the inbound trace as parent.

The receiver is a small HTTP server started by the test; it decodes each export with the
OTLP protobuf definitions (``opentelemetry-proto``) exactly as a collector would.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from glmbridge_server.app import create_app
from glmbridge_server.dashboard.otel import Tracing
from glmbridge_server.settings import Settings

pytest.importorskip("opentelemetry.sdk")
trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

pytestmark = pytest.mark.e2e

RunningServer = Any
Start = Callable[[Starlette], RunningServer]
MakeSettings = Callable[..., Settings]
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
    assert attrs["gen_ai.response.model"] == "glm-4.7"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["http.response.status_code"] == 200
    assert attrs["glmbridge.request_id"] == child.headers["request-id"]
    assert span.end_time_unix_nano > span.start_time_unix_nano
    assert "a private prompt" not in str(span)  # prompts never go into spans
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "glmbridge"
    other = next(s for _, s in exchanges if s.name == "chat glm-4.7")
    assert other.parent_span_id == b"" and other.trace_id.hex() != TRACE_ID  # a new root


def test_tracing_is_off_without_an_endpoint_or_when_disabled() -> None:
    assert Tracing.from_environment({}) is None
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    assert Tracing.from_environment(disabled) is None
    on = Tracing.from_environment({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9"})
    assert on is not None
    on.shutdown()
