"""The access-log line: what it says, in which order, as text and as JSON fields."""

from __future__ import annotations

import json
import logging

import pytest

from glmbridge.ir import Usage
from glmbridge_server.call.record import CallRecord
from glmbridge_server.edge.access import log_access
from glmbridge_server.logs import JsonFormatter, RedactingFormatter, TextFormatter


def _record(**extra: object) -> CallRecord:
    record = CallRecord(
        "req_0123456789abcdefghijklmn", "POST", "/v1/messages", "anthropic",
        None, None, None, received=10.0,  # type: ignore[arg-type]
    )  # fmt: skip
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def _lines(caplog: pytest.LogCaptureFixture, record: CallRecord) -> list[logging.LogRecord]:
    with caplog.at_level(logging.INFO, logger="glmbridge.access"):
        log_access(record, 0.01234)
    return [r for r in caplog.records if r.name == "glmbridge.access"]


def test_full_line_text_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    record = _record(
        client_model="claude-sonnet-4-5", routed_model="glm-5.3", served_model="glm-5.3",
        upstream="zai-coding", stream=True, upstream_status=200, upstream_attempts=1,
        key_index=0, status=200, first_output=10.0021, disconnected=True,
        usage=Usage(input_tokens=100, output_tokens=7, cache_read_input_tokens=20),
    )  # fmt: skip
    (line,) = _lines(caplog, record)
    assert line.levelno == logging.INFO
    assert line.getMessage() == (
        "POST /v1/messages 200 request_id=req_0123456789abcdefghijklmn protocol=anthropic "
        "latency_ms=12.3 client_model=claude-sonnet-4-5 routed_model=glm-5.3 "
        "served_model=glm-5.3 upstream=zai-coding stream=True upstream_status=200 "
        "upstream_attempts=1 key_index=0 ttft_ms=2.1 input_tokens=120 output_tokens=7 "
        "cached_tokens=20 client_disconnected=True"
    )
    fields = line.fields  # type: ignore[attr-defined]
    assert list(fields) == [
        "request_id", "method", "path", "status", "protocol", "latency_ms", "client_model",
        "routed_model", "served_model", "upstream", "stream", "upstream_status",
        "upstream_attempts", "key_index", "ttft_ms", "input_tokens", "output_tokens",
        "cached_tokens", "client_disconnected",
    ]  # fmt: skip
    assert fields["input_tokens"] == 120 and fields["ttft_ms"] == 2.1
    out = json.loads(JsonFormatter().format(line))
    assert out["logger"] == "glmbridge.access" and out["cached_tokens"] == 20
    assert out["message"] == line.getMessage()


def test_short_line_leaves_unset_fields_out(caplog: pytest.LogCaptureFixture) -> None:
    (line,) = _lines(caplog, _record(status=404))
    assert line.getMessage() == (
        "POST /v1/messages 404 request_id=req_0123456789abcdefghijklmn protocol=anthropic "
        "latency_ms=12.3"
    )


def test_control_characters_and_secrets_cannot_reach_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (line,) = _lines(caplog, _record(client_model="m\nFAKE sk-abcdefgh", status=200))
    inner = TextFormatter("%(name)s: %(message)s")
    text = RedactingFormatter(inner, ["sk-abcdefgh"]).format(line)
    assert "\n" not in text and "sk-abcdefgh" not in text
    assert "client_model=m\\nFAKE [redacted]" in text


def test_simulator_traffic_is_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    record = _record(status=200)
    record.path = "/_mock/api/coding/paas/v4/chat/completions"
    assert _lines(caplog, record) == []
    with caplog.at_level(logging.DEBUG, logger="glmbridge.access"):
        log_access(record, 0.001)
    assert [r.levelno for r in caplog.records if r.name == "glmbridge.access"] == [logging.DEBUG]
