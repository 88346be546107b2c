"""Inline media through every door, end to end (the real SDKs → glmbridge → simulator):
base64 in the URL-safe alphabet, without padding or inside a data URL reaches the vision
model as standard base64; bytes that are not base64 are a protocol-native 400 naming the
part (never a 500); a vision model that fails says why, and is asked again next turn.

The simulator, like GLM, rejects non-standard base64 with 1210 (simulator/images.py), so a
door that forwarded google-genai's URL-safe bytes unchanged would fail these tests."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from glmbridge_server.simulator import Script, ScriptError
from tests.server.tools.test_vision_fallback import png, texts_of
from tests.support.servers import RunningServer
from tests.support.simulator import chats

pytestmark = pytest.mark.e2e

#: Bytes whose base64 holds ``-`` and ``_`` in the URL-safe alphabet (``+``, ``/`` standard).
PNG = base64.b64decode(png("Total: 42")) + b"\xfb\xff\xfe" * 3


@pytest.fixture(autouse=True)
def _fresh_cache(bridge: RunningServer) -> None:
    bridge.app.state.image_descriptions = None  # the typed app state's empty cache


def gemini(url: str) -> genai.Client:
    return genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url, timeout=30_000))


def image_urls(sim: RunningServer) -> list[str]:
    return [
        p["image_url"]["url"]
        for body in chats(sim)
        for m in body["messages"]
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "image_url"
    ]


def test_google_genai_part_from_bytes_reaches_the_vision_model(
    bridge: RunningServer, sim: RunningServer
) -> None:
    part = types.Part.from_bytes(data=PNG, mime_type="image/png")
    assert "-" in part.model_dump_json() or "_" in part.model_dump_json()  # URL-safe on the wire
    with gemini(bridge.url) as client:
        reply = client.models.generate_content(
            model="gemini-2.5-flash", contents=[part, "What does it say?"]
        )
    assert reply.text
    (url,) = image_urls(sim)
    assert url == base64.b64encode(PNG).decode()  # standard alphabet, padded
    body = chats(sim)[-1]
    assert body["model"] == "glm-5.3-flash"  # the vision model saw it
    assert "could not be shown" not in texts_of(body)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
        lambda b: "data:image/png;base64," + base64.b64encode(b).decode(),
        lambda b: base64.encodebytes(b).decode(),  # MIME line breaks
    ],
    ids=["urlsafe-unpadded", "data-url", "line-breaks"],
)
def test_anthropic_door_normalises_base64(
    client: anthropic.Anthropic, sim: RunningServer, mangle: Any
) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": mangle(PNG)}
    client.messages.create(
        model="glm-5.3-flash",
        max_tokens=64,
        messages=[{"role": "user", "content": [{"type": "image", "source": source}]}],
    )
    assert image_urls(sim) == [base64.b64encode(PNG).decode()]


def test_openai_doors_normalise_a_url_safe_data_url(
    bridge: RunningServer, sim: RunningServer
) -> None:
    url = "data:image/png;base64," + base64.urlsafe_b64encode(PNG).decode().rstrip("=")
    with openai.OpenAI(base_url=f"{bridge.url}/v1", api_key="x", max_retries=0) as sdk:
        sdk.chat.completions.create(
            model="glm-5.3-flash",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        )
        sdk.responses.create(
            model="glm-5.3-flash",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": url}]}],
        )
    assert image_urls(sim) == [base64.b64encode(PNG).decode()] * 2


def test_gemini_undecodable_inline_data_is_a_400_naming_the_part(bridge: RunningServer) -> None:
    for mime in ("text/plain", "image/png"):
        body = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "read"},
                        {"inlineData": {"mimeType": mime, "data": "@@not base64@@"}},
                    ],
                }
            ]
        }
        reply = httpx2.post(
            f"{bridge.url}/v1beta/models/gemini-2.5-flash:generateContent", json=body, timeout=30
        )
        assert reply.status_code == 400, reply.text
        error = reply.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert "contents.0.parts.1.inlineData.data" in error["message"]
        assert "base64" in error["message"]


def test_gemini_text_plain_inline_part_from_the_sdk_is_read(
    bridge: RunningServer, sim: RunningServer
) -> None:
    text = "The launch code is 7-7-1 ~~ ok?>>"  # its base64 has URL-safe characters
    part = types.Part.from_bytes(data=text.encode(), mime_type="text/plain")
    with gemini(bridge.url) as client:
        client.models.generate_content(model="gemini-2.5-flash", contents=[part, "summarise"])
    assert text in texts_of(chats(sim)[-1])


def test_anthropic_and_openai_bad_base64_are_400s(bridge: RunningServer) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": "%%%%"}
    sdk = anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0)
    with sdk, pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model="glm-5.3-flash",
            max_tokens=64,
            messages=[{"role": "user", "content": [{"type": "image", "source": source}]}],
        )
    assert "messages.0.content.0.source.data" in str(caught.value)
    oai = openai.OpenAI(base_url=f"{bridge.url}/v1", api_key="x", max_retries=0)
    with oai, pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(
            model="glm-5.3-flash",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}
                    ],
                }
            ],
        )
    assert "messages.0.content.0: is not valid base64" in str(bad.value)


def test_a_failing_vision_model_says_why_and_is_not_remembered(
    bridge: RunningServer, sim: RunningServer
) -> None:
    """The vision model rejects the turn (1210, which may be about any parameter): the note
    gives that reason, never "cannot see images", and the next turn asks the model again."""
    sim.app.state.script_queue.append(
        Script(error=ScriptError(status=400, code="1210", message="bad parameter"))
    )
    part = types.Part.from_bytes(data=PNG, mime_type="image/png")
    with gemini(bridge.url) as client:
        client.models.generate_content(model="gemini-2.5-flash", contents=[part, "what is it?"])
        note = texts_of(chats(sim)[-1])
        assert "cannot see images" not in note
        assert "glm-5.3-flash answered [1210] bad parameter" in note
        client.models.generate_content(model="gemini-2.5-flash", contents=[part, "what is it?"])
    last = chats(sim)[-1]
    assert last["model"] == "glm-5.3-flash"
    assert image_urls(sim)[-1] == base64.b64encode(PNG).decode()  # shown again, not a placeholder
