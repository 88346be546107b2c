"""End to end: image and video generation with the official openai and google-genai SDKs →
glmbridge (uvicorn) → the GLM simulator's media APIs (docs/media.md).

A bridge with a pay-as-you-go media key (``media_api_keys``) serves media from the
simulator's ``/api/paas/v4``; the session bridge (one Coding Plan key, no media key)
answers every media request with a 403 that names ``ZAI_MEDIA_API_KEY`` and sends nothing.
"""

from __future__ import annotations

import base64
import contextlib
import struct
import time
from typing import Any

import httpx2
import openai
import pytest
from google import genai
from google.genai import errors, types

from glmbridge.media.images import IMAGE_MODELS
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.traffic.usage_store import open_readonly
from tests.support.servers import MakeSettings, RunningServer, Start
from tests.support.simulator import chats

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"
MEDIA_KEYS = ("media-key-0001", "media-key-0002")


@pytest.fixture
def media_bridge(sim: RunningServer, start_server: Start, bridge_settings: MakeSettings) -> Any:
    """A bridge with two pay-as-you-go media keys in front of the simulator."""
    return start_server(create_app(bridge_settings(sim.url, media_api_keys=MEDIA_KEYS)))


def sdk(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=30)


def gemini(server: Any) -> genai.Client:
    options = types.HttpOptions(base_url=server.url, api_version="v1beta", timeout=30_000)
    return genai.Client(api_key="x", http_options=options)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_prompt(data: bytes) -> str:
    start = data.index(b"tEXtprompt\x00") + len(b"tEXtprompt\x00")
    (length,) = struct.unpack(">I", data[start - 15 : start - 11])
    return data[start : start - 7 + length].decode("latin-1")


def media_calls(sim: RunningServer, kind: str) -> list[dict[str, Any]]:
    return [r for r in sim.app.state.media_requests if r["path"].endswith(kind)]


# --- images ----------------------------------------------------------------------------------


def test_images_as_urls_fan_out_one_call_per_image(media_bridge: Any, sim: RunningServer) -> None:
    result = sdk(media_bridge).images.generate(
        model="glm-image", prompt="a red circle", n=2, size="1024x1024", response_format="url"
    )
    assert len(result.data) == 2
    assert all(d.url and d.b64_json is None for d in result.data)
    assert result.data[0].url != result.data[1].url
    for item in result.data:  # Z.ai's temporary URL, on the upstream's file host
        data = httpx2.get(item.url).content
        assert png_size(data) == (1024, 1024)
        assert png_prompt(data) == "a red circle"
    calls = media_calls(sim, "/images/generations")
    assert [c["path"] for c in calls] == ["/api/paas/v4/images/generations"] * 2
    assert calls[0]["body"] == {"model": "glm-image", "prompt": "a red circle",
                                "size": "1024x1024", "quality": "hd"}  # fmt: skip


def test_gpt_image_names_answer_base64_on_the_snapped_grid(
    media_bridge: Any, sim: RunningServer
) -> None:
    result = sdk(media_bridge).images.generate(
        model="gpt-image-1", prompt="a lighthouse", size="1536x1024", quality="medium"
    )
    (item,) = result.data
    data = base64.b64decode(item.b64_json or "")
    assert png_size(data) == (1536, 1024) and png_prompt(data) == "a lighthouse"
    (call,) = media_calls(sim, "/images/generations")
    assert call["body"]["model"] == "glm-image" and call["body"]["quality"] == "standard"


@pytest.mark.parametrize(
    ("model", "size", "made"),
    [("dall-e-2", "256x256", "1024x1024"), ("cogview-4-250304", "256x256", "512x512"),
     ("dall-e-3", "1792x1024", "1792x1024"), ("cogview-4-250304", None, "1024x1024"),
     ("glm-image", None, "1280x1280")],
)  # fmt: skip
def test_sizes_snap_to_the_models_grid(
    media_bridge: Any, sim: RunningServer, model: str, size: str | None, made: str
) -> None:
    extra = {"size": size} if size else {}
    result = sdk(media_bridge).images.generate(
        model=model, prompt="grid", response_format="b64_json", **extra
    )
    data = base64.b64decode(result.data[0].b64_json or "")
    assert "x".join(map(str, png_size(data))) == made


def test_an_impossible_size_is_a_400_and_nothing_is_sent(
    media_bridge: Any, sim: RunningServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(media_bridge).images.generate(model="glm-image", prompt="x", size="4096x1024")
    assert "1024-2048" in caught.value.message
    assert media_calls(sim, "/images/generations") == []


def test_an_unknown_model_is_a_400(media_bridge: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="not an image model"):
        sdk(media_bridge).images.generate(model="glm-4.7", prompt="x")


def test_content_filter_verdicts_are_surfaced(media_bridge: Any) -> None:
    raw = sdk(media_bridge).images.with_raw_response.generate(model="glm-image", prompt="x")
    assert raw.http_response.json()["content_filter"] == [{"role": "assistant", "level": 3}]


# --- Gemini image output --------------------------------------------------------------------


def test_a_gemini_image_model_answers_inline_data(media_bridge: Any, sim: RunningServer) -> None:
    client = gemini(media_bridge)  # kept: a collected client closes its connection pool
    response = client.models.generate_content(
        model="gemini-2.5-flash-image", contents="a banana on a desk"
    )
    part = response.candidates[0].content.parts[0]
    assert part.inline_data.mime_type == "image/png"
    assert png_prompt(part.inline_data.data) == "a banana on a desk"
    assert not chats(sim)  # GLM was not asked


def test_response_modalities_image_streams_one_inline_image(media_bridge: Any) -> None:
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")
    )
    client = gemini(media_bridge)
    chunks = list(client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="a wide landscape", config=config
    ))  # fmt: skip
    (chunk,) = chunks
    data = chunk.candidates[0].content.parts[0].inline_data.data
    width, height = png_size(data)
    assert width > height and width % 32 == 0 and height % 32 == 0


# --- videos ----------------------------------------------------------------------------------


def test_a_video_job_goes_queued_then_completed_then_downloads(
    media_bridge: Any, sim: RunningServer
) -> None:
    client = sdk(media_bridge)
    video = client.videos.create(model="sora-2", prompt="waves", seconds="8", size="1280x720")
    assert (video.status, video.progress, video.seconds, video.size) == (
        "queued",
        0,
        "8",
        "1280x720",
    )
    (call,) = media_calls(sim, "/videos/generations")
    assert call["body"] == {"model": "cogvideox-3", "prompt": "waves", "size": "1280x720",
                            "duration": 10}  # fmt: skip
    states = [client.videos.retrieve(video.id).status for _ in range(3)]
    assert states == ["in_progress", "in_progress", "completed"]
    assert client.videos.retrieve(video.id).progress == 100
    mp4 = client.videos.download_content(video.id).content
    assert mp4[4:8] == b"ftyp" and b"moov" in mp4 and b"png " in mp4
    cover = client.videos.download_content(video.id, variant="thumbnail").content
    assert png_prompt(cover) == "waves"
    polls = media_calls(sim, "/async-result/" + sim.app.state.media_tasks.popitem()[0])
    assert len(polls) >= 3  # each poll asked Z.ai with the key that created the task


def test_a_json_video_request_with_an_image_reference(
    media_bridge: Any, sim: RunningServer
) -> None:
    answer = httpx2.post(f"{media_bridge.url}/v1/videos", json={
        "prompt": "move", "input_reference": "https://example.com/a.png", "quality": "speed",
        "fps": 60, "with_audio": True,
    })  # fmt: skip
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    (call,) = media_calls(sim, "/videos/generations")
    assert call["body"]["image_url"] == "https://example.com/a.png"
    assert (call["body"]["quality"], call["body"]["fps"], call["body"]["with_audio"]) == (
        "speed", 60, True)  # fmt: skip


def test_a_failed_task_and_an_unknown_video(media_bridge: Any) -> None:
    client = sdk(media_bridge)
    video = client.videos.create(prompt="broken [[sim:fail]]")
    states = [client.videos.retrieve(video.id).status for _ in range(3)]
    assert states[-1] == "failed"
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_unknown")


# --- without a pay-as-you-go key ---------------------------------------------------------------


def test_with_only_a_coding_plan_key_every_media_call_is_a_clear_403(
    bridge: RunningServer, sim: RunningServer
) -> None:
    client = sdk(bridge)
    with pytest.raises(openai.PermissionDeniedError, match="ZAI_MEDIA_API_KEY"):
        client.images.generate(model="gpt-image-1", prompt="x")
    with pytest.raises(openai.PermissionDeniedError, match="ZAI_MEDIA_API_KEY"):
        client.videos.create(prompt="x")
    google = gemini(bridge)
    with pytest.raises(errors.ClientError) as caught:
        google.models.generate_content(model="gemini-2.5-flash-image", contents="x")
    assert caught.value.code == 403 and "ZAI_MEDIA_API_KEY" in str(caught.value)
    assert sim.app.state.media_requests == []  # nothing was sent upstream
    assert not chats(sim)


def test_a_payg_main_upstream_serves_media_with_its_own_keys(
    sim: RunningServer, start_server: Start, bridge_settings: MakeSettings
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, plan="payg")))
    result = sdk(server).images.generate(model="glm-image", prompt="payg", response_format="url")
    assert len(result.data) == 1


def test_a_refused_media_key_fails_over_to_the_next(
    sim: RunningServer, start_server: Start, bridge_settings: MakeSettings
) -> None:
    keys = ("broke-key", "media-key-0003")  # the simulator answers 429/1113 to broke-key
    server = start_server(create_app(bridge_settings(sim.url, media_api_keys=keys)))
    for _ in range(2):
        result = sdk(server).images.generate(model="glm-image", prompt="x", response_format="url")
        assert len(result.data) == 1


# --- the Responses door's hosted image_generation tool -----------------------------------------

DRAW = '[[sim:{"tool_calls": [{"name": "image_generation", "arguments": {"prompt": "a cat"}}]}]]'


def test_the_hosted_image_tool_yields_an_image_generation_call(
    media_bridge: Any, sim: RunningServer
) -> None:
    response = sdk(media_bridge).responses.create(
        model="glm-4.7", input=f"draw a cat {DRAW}", tools=[{"type": "image_generation"}]
    )
    kinds = [item.type for item in response.output]
    assert kinds == ["image_generation_call", "message"]
    image = response.output[0]
    assert image.status == "completed" and image.revised_prompt == "a cat"
    data = base64.b64decode(image.result or "")
    assert png_size(data) == (1280, 1280) and png_prompt(data) == "a cat"
    first, second = chats(sim)[-2:]
    offered = {t["function"]["name"] for t in first["tools"]}
    assert "image_generation" in offered
    tool = next(m for m in second["messages"] if m["role"] == "tool")
    assert "was generated and is shown to the user" in tool["content"]
    assert image.result not in str(second)  # GLM gets a short result, never the image


def test_the_hosted_image_tool_streams_its_events(media_bridge: Any) -> None:
    stream = sdk(media_bridge).responses.create(
        model="glm-4.7",
        input=f"draw {DRAW}",
        tools=[{"type": "image_generation", "size": "1536x1024"}],
        stream=True,
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    image_events = [k for k in kinds if k.startswith("response.image_generation_call.")]
    assert image_events == ["response.image_generation_call.in_progress",
                            "response.image_generation_call.generating",
                            "response.image_generation_call.completed"]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = [e.item for e in events if e.type == "response.output_item.done"]
    image = next(i for i in done if i.type == "image_generation_call")
    assert png_size(base64.b64decode(image.result or "")) == (1536, 1024)
    final = events[-1].response
    assert final.id == events[0].response.id
    assert [i.type for i in final.output] == ["image_generation_call", "message"]


def test_without_a_media_key_the_hosted_image_tool_is_dropped(
    bridge: RunningServer, sim: RunningServer
) -> None:
    response = sdk(bridge).responses.create(
        model="glm-4.7", input="hello", tools=[{"type": "image_generation"}]
    )
    assert response.output[-1].type == "message"
    (chat,) = chats(sim)
    assert "image_generation" not in str(chat.get("tools"))
    assert sim.app.state.media_requests == []


@pytest.mark.parametrize(
    ("path", "body", "ctype"),
    [("/v1/images/generations", b"{", "application/json"),
     ("/v1/images/generations", b"[1]", "application/json"),
     ("/v1/images/generations", b'{"prompt": ["x"], "n": "2"}', "application/json"),
     ("/v1/videos", b"\x00\xff", "application/json"),
     ("/v1/videos", b"--x\r\nnot a part\r\n--x--", "multipart/form-data; boundary=x"),
     ("/v1/videos", b"abc", "multipart/form-data"),
     ("/v1/videos", b'{"prompt": {"a": 1}}', "application/json"),
     ("/v1/responses", b'{"model": "glm-4.7", "input": 5, "tools": [{"type": "image_generation"}]}',
      "application/json"),
     ("/v1beta/models/gemini-2.5-flash-image:generateContent", b'{"contents": 5}',
      "application/json")],
)  # fmt: skip
def test_malformed_media_requests_are_4xx(
    media_bridge: Any, sim: RunningServer, path: str, body: bytes, ctype: str
) -> None:
    answer = httpx2.post(media_bridge.url + path, content=body, headers={"content-type": ctype})
    assert 400 <= answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
    assert sim.app.state.media_requests == []


def test_mock_mode_serves_media_with_no_key(start_server: Start) -> None:
    server = start_server(create_app(Settings(mock=True, usage_store=False)))
    client = sdk(server)
    result = client.images.generate(model="dall-e-3", prompt="mock", response_format="b64_json")
    assert png_prompt(base64.b64decode(result.data[0].b64_json or "")) == "mock"
    video = client.videos.create(prompt="mock video")
    assert client.videos.retrieve(video.id).status == "in_progress"


def test_the_stream_stays_alive_while_an_image_is_made(
    sim: RunningServer, start_server: Start, bridge_settings: MakeSettings
) -> None:
    settings = bridge_settings(sim.url, media_api_keys=MEDIA_KEYS, ping_interval=0.2,
                               commit_after=0.1)  # fmt: skip
    server = start_server(create_app(settings))
    sim.app.state.media_latency = 1.0  # the image takes a second
    events = list(sdk(server).responses.create(
        model="glm-4.7", input=f"draw {DRAW}", tools=[{"type": "image_generation"}], stream=True,
    ))  # fmt: skip
    kinds = [e.type for e in events]
    start = kinds.index("response.image_generation_call.generating")
    end = kinds.index("response.image_generation_call.completed")
    assert kinds[start + 1 : end].count("response.in_progress") >= 3  # keep-alives meanwhile
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_image_edits_are_a_clear_400(media_bridge: Any, sim: RunningServer) -> None:
    with pytest.raises(openai.BadRequestError, match="editing is not supported"):
        sdk(media_bridge).images.edit(image=("a.png", b"\x89PNG", "image/png"), prompt="x")
    assert sim.app.state.media_requests == []


def test_each_image_is_a_usage_row_with_its_price(
    sim: RunningServer, start_server: Start, bridge_settings: MakeSettings, tmp_path: Any
) -> None:
    settings = bridge_settings(sim.url, media_api_keys=MEDIA_KEYS, data_dir=str(tmp_path))
    server = start_server(create_app(settings))
    sdk(server).images.generate(model="gpt-image-1", prompt="two cats", n=2)
    db = settings.usage_db
    assert db is not None
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(rows) < 2:  # the writer batches every 0.25 s
        time.sleep(0.1)
        with contextlib.closing(open_readonly(db)) as conn:
            rows = conn.execute(
                "SELECT model, client_model, cost_usd FROM usage WHERE route = ?",
                ("/v1/images/generations",),
            ).fetchall()
    assert rows == [("glm-image", "gpt-image-1", IMAGE_MODELS["glm-image"].price_usd)] * 2
