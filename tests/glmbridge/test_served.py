"""glmbridge.served: the model an answer names (the Coding Plan answers legacy ids with another
one: https://docs.bigmodel.cn/cn/coding-plan/overview; anomalyco/models.dev PR#7331) and what
a model list names (PrimeIntellect-ai/prime-agent PR#1443)."""

from __future__ import annotations

import msgspec
import pytest

from glmbridge.served import ServedAs, ServedModelScanner, listed_models, served_model

CHUNK = b'data: {"id":"1","created":1,"model":"glm-5.3-flash","choices":[]}\n\n'
START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
    b'"role":"assistant","model":"GLM-5.3","content":[]}}\n\n'
)


def test_a_whole_answer_names_its_model() -> None:
    assert served_model(b'{"id":"x","model":"glm-5.3","choices":[]}') == "glm-5.3"
    assert served_model(b'{"type":"message","model":"GLM-5.3-Flash"}') == "glm-5.3-flash"
    assert served_model(b'{"id":"x"}') is None
    assert served_model(b"not json") is None
    assert served_model(b'{"model":"bad\\u0000id"}') is None  # not printable: not believed


@pytest.mark.parametrize("data", [CHUNK, START])
@pytest.mark.parametrize("cut", [1, 7, 30, 41, 60])
def test_a_stream_names_its_model_whatever_the_chunking(data: bytes, cut: int) -> None:
    expected = "glm-5.3-flash" if data is CHUNK else "glm-5.3"
    scanner = ServedModelScanner()
    assert scanner.feed(data[:cut]) in (None, expected)  # never a cut-off id
    assert scanner.feed(data[cut:]) == expected and scanner.done
    assert scanner.feed(b'data: {"model":"other"}\n\n') == expected  # the first one counts


def test_a_model_inside_a_string_is_not_the_served_model() -> None:
    scanner = ServedModelScanner()
    escaped = b'data: {"choices":[{"delta":{"content":"say \\"model\\":\\"x\\""}}]}\n\n'
    assert scanner.feed(escaped) is None and not scanner.done
    scanner.feed(b"x" * 70_000)
    assert scanner.done and scanner.model is None  # gives up after the first 64 KiB


def test_a_model_list() -> None:
    body = msgspec.json.encode(
        {"object": "list", "data": [{"id": "GLM-5.3"}, {"id": "glm-5.3-flash"}]}
    )
    assert listed_models(body) == {"glm-5.3", "glm-5.3-flash"}
    assert listed_models(b'{"error":{"code":"1001"}}') is None
    assert listed_models(b"[]") is None
    huge = msgspec.json.encode({"data": [{"id": f"glm-{i}"} for i in range(2000)]})
    assert len(listed_models(huge) or ()) == 500


def test_learned_serving_models() -> None:
    learned = ServedAs({"p": {"glm-4.6": "glm-4.6"}})
    assert learned.get("p", "glm-4.6") is None and learned.known("p", "glm-4.6") == "glm-4.6"
    assert learned.learn("p", "GLM-4.5-Air", "glm-5.3-flash")
    assert (
        learned.get("p", "glm-4.5-air") == "glm-5.3-flash"
        and learned.get("q", "glm-4.5-air") is None
    )
    assert learned.to_builtins() == {"p": {"glm-4.6": "glm-4.6", "glm-4.5-air": "glm-5.3-flash"}}
