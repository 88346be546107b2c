"""glmbridge.media: image and video request shapes, the size grid, download hosts, forms,
Gemini image requests and the Responses image tool plan (sans-I/O)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from glmbridge.errors import ClientRequestError
from glmbridge.media.forms import decode_form
from glmbridge.media.gemini import gemini_image_answer, gemini_image_job, wants_image
from glmbridge.media.hosts import allowed_download
from glmbridge.media.images import (
    IMAGE_MODELS,
    decode_image_request,
    image_model_for,
    openai_images_body,
    parse_zai_image,
    snap_size,
)
from glmbridge.media.responses import ImageToolPlan, has_image_tool
from glmbridge.media.responses_stream import EventWriter
from glmbridge.media.videos import (
    VideoResult,
    decode_video_request,
    parse_task,
    parse_task_result,
    video_object,
)

GLM_IMAGE = IMAGE_MODELS["glm-image"]
COGVIEW = IMAGE_MODELS["cogview-4-250304"]
enc = msgspec.json.encode


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "glm", "cogview"),
    [(None, "1280x1280", "1024x1024"), ("auto", "1280x1280", "1024x1024"),
     ("1024x1024", "1024x1024", "1024x1024"), ("256x256", "1024x1024", "512x512"),
     ("1536x1024", "1536x1024", "1536x1024"), ("1024x1792", "1024x1792", "1024x1792"),
     ("1000x1000", "1024x1024", "992x992"), ("2048x2048", "2048x2048", "1440x1440"),
     ("4000x2000", "2048x1024", "2048x1024"), ("1568x1056", "1568x1056", "1568x1056")],
)  # fmt: skip
def test_sizes_snap_to_each_models_grid(size: str | None, glm: str, cogview: str) -> None:
    assert snap_size(size, GLM_IMAGE) == glm
    assert snap_size(size, COGVIEW) == cogview
    for model, made in ((GLM_IMAGE, glm), (COGVIEW, cogview)):
        w, h = (int(v) for v in made.split("x"))
        assert w % model.step == 0 and h % model.step == 0 and w * h <= model.max_pixels


@pytest.mark.parametrize("size", ["4096x1024", "1024x4096", "big", "0x100", "12x"])
def test_impossible_sizes_are_a_400(size: str) -> None:
    with pytest.raises(ClientRequestError) as caught:
        snap_size(size, GLM_IMAGE)
    assert caught.value.path == "size"


def test_model_names() -> None:
    assert image_model_for(None) is GLM_IMAGE
    assert image_model_for("DALL-E-3") is GLM_IMAGE
    assert image_model_for("gpt-image-2") is GLM_IMAGE
    assert image_model_for("cogview-4-250304") is COGVIEW
    assert image_model_for("dall-e-3", {"dall-e-3": "cogview-4-250304"}) is COGVIEW
    with pytest.raises(ClientRequestError, match="not an image model"):
        image_model_for("glm-4.7")


def test_an_openai_request_becomes_one_zai_body_per_image() -> None:
    job = decode_image_request(enc({"prompt": "p", "model": "dall-e-3", "n": 3,
                                    "quality": "hd", "user": "user-1234"}))  # fmt: skip
    assert (job.n, job.response_format, job.quality, job.price_usd) == (3, "url", "hd", 0.015)
    assert msgspec.json.decode(job.zai_body()) == {
        "model": "glm-image", "prompt": "p", "size": "1280x1280", "quality": "hd",
        "user_id": "user-1234",
    }  # fmt: skip
    codex = decode_image_request({"prompt": "p", "model": "gpt-image-2", "size": "auto",
                                  "quality": "auto", "background": "opaque"})  # fmt: skip
    assert (codex.response_format, codex.quality) == ("b64_json", "hd")
    cheap = decode_image_request({"prompt": "p", "model": "cogview-4-250304", "quality": "low"})
    assert (cheap.quality, cheap.price_usd) == ("standard", 0.01)
    assert decode_image_request({"prompt": "p", "user": "short"}).user_id is None


@pytest.mark.parametrize(
    ("body", "path"),
    [({}, "prompt"), ({"prompt": " "}, "prompt"), ({"prompt": "p", "n": 0}, "n"),
     ({"prompt": "p", "n": 11}, "n"), ({"prompt": "p", "n": True}, "n"),
     ({"prompt": "p", "quality": "ultra"}, "quality"),
     ({"prompt": "p", "response_format": "png"}, "response_format"),
     ({"prompt": 5}, "prompt"), ({"prompt": "p", "model": 3}, "model")],
)  # fmt: skip
def test_invalid_image_requests(body: dict[str, Any], path: str) -> None:
    with pytest.raises(ClientRequestError) as caught:
        decode_image_request(enc(body))
    assert caught.value.path == path


def test_zai_image_answers() -> None:
    verdict = {"role": "assistant", "level": 3}
    data = [{"url": "https://x.z.ai/a.png"}]
    answer = parse_zai_image(enc({"created": 1, "data": data, "content_filter": [verdict]}))
    assert answer.url == "https://x.z.ai/a.png" and answer.content_filter == (
        {"role": "assistant", "level": 3},)  # fmt: skip
    for bad in (b"{", enc({"data": []}), enc({"data": [{"url": ""}]})):
        with pytest.raises(ValueError):
            parse_zai_image(bad)
    job = decode_image_request({"prompt": "p", "model": "cogview-4-250304"})
    body = msgspec.json.decode(openai_images_body([{"url": "u"}], [], job=job))
    assert (body["data"], body["quality"], body["size"]) == ([{"url": "u"}], "medium", "1024x1024")


# --- videos ----------------------------------------------------------------------------------


def test_a_video_request_becomes_a_cogvideox_task() -> None:
    job = decode_video_request({"prompt": "p", "model": "sora-2", "seconds": "8",
                                "size": "720x1280", "fps": "60", "with_audio": "true",
                                "input_reference": (b"\x89PNG", "image/png")})  # fmt: skip
    body = msgspec.json.decode(job.zai_body())
    assert body == {"model": "cogvideox-3", "prompt": "p", "size": "720x1280", "duration": 10,
                    "image_url": "data:image/png;base64,iVBORw==", "fps": 60,
                    "with_audio": True}  # fmt: skip
    assert decode_video_request({"prompt": "p", "seconds": 4}).duration == 5
    assert decode_video_request({"prompt": "p"}).size == "1280x720"
    url = decode_video_request({"prompt": "p", "input_reference": {"image_url": "https://a/b"}})
    assert url.image_url == "https://a/b"


@pytest.mark.parametrize(
    ("fields", "path"),
    [({}, "prompt"), ({"prompt": "x" * 513}, "prompt"), ({"prompt": "p", "model": "veo"}, "model"),
     ({"prompt": "p", "size": "7680x4320"}, "size"), ({"prompt": "p", "seconds": "60"}, "seconds"),
     ({"prompt": "p", "fps": "24"}, "fps"), ({"prompt": "p", "quality": "best"}, "quality"),
     ({"prompt": "p", "input_reference": (b"GIF8", "image/gif")}, "input_reference"),
     ({"prompt": "p", "input_reference": "file:///etc/passwd"}, "input_reference")],
)  # fmt: skip
def test_invalid_video_requests(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(ClientRequestError) as caught:
        decode_video_request(fields)
    assert caught.value.path == path


def test_task_answers_and_the_video_object() -> None:
    assert parse_task(enc({"id": "t1", "task_status": "PROCESSING"})) == "t1"
    with pytest.raises(ValueError):
        parse_task(enc({"task_status": "PROCESSING"}))
    result = [{"url": "u", "cover_image_url": "c"}]
    done = parse_task_result(enc({"task_status": "SUCCESS", "video_result": result}))
    assert done == VideoResult(status="SUCCESS", url="u", cover_url="c")
    with pytest.raises(ValueError):
        parse_task_result(enc({"task_status": "SUCCESS", "video_result": []}))
    job = decode_video_request({"prompt": "p"})
    states = [
        video_object("v", job, created=0, expires=86400, result=r, now=60)
        for r in (None, VideoResult(status="PROCESSING"), done, VideoResult(status="FAIL"))
    ]
    assert [(s["status"], s["progress"]) for s in states] == [
        ("queued", 0), ("in_progress", 50), ("completed", 100), ("failed", 0)]  # fmt: skip
    assert states[2]["completed_at"] == 60 and states[3]["error"]["code"]


# --- hosts, forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "ok"),
    [("https://aigc-files.bigmodel.cn/a.png", "https://open.bigmodel.cn/api/paas/v4", True),
     ("https://cdn.z.ai/a.png", "https://api.z.ai/api/paas/v4", True),
     ("http://cdn.z.ai/a.png", "https://api.z.ai/api/paas/v4", False),
     ("https://z.ai.evil.com/a.png", "https://api.z.ai/api/paas/v4", False),
     ("https://127.0.0.1/a.png", "https://api.z.ai/api/paas/v4", False),
     ("https://user:pw@cdn.z.ai/a.png", "https://api.z.ai/api/paas/v4", False),
     ("http://127.0.0.1:8080/f/a.png", "http://127.0.0.1:8080/api/paas/v4", True),
     ("http://127.0.0.1:8081/f/a.png", "http://127.0.0.1:8080/api/paas/v4", False),
     ("http://localhost:8080/a.png", "http://127.0.0.1:8080/api/paas/v4", False)],
)  # fmt: skip
def test_downloads_only_from_the_media_upstreams_own_hosts(url: str, base: str, ok: bool) -> None:
    assert allowed_download(url, base) is ok


def test_multipart_fields_and_files() -> None:
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nwaves\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"input_reference\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n")  # fmt: skip
    body = head.encode() + b"\x89PNG\x00\xff" + f"\r\n--{boundary}--\r\n".encode()
    fields = decode_form(body, f"multipart/form-data; boundary={boundary}")
    assert fields == {"prompt": "waves", "input_reference": (b"\x89PNG\x00\xff", "image/png")}
    with pytest.raises(ClientRequestError):
        decode_form(body, "multipart/form-data")


# --- Gemini ----------------------------------------------------------------------------------


def test_gemini_image_requests() -> None:
    text = enc({"contents": [{"role": "user", "parts": [{"text": "a cat"}]}]})
    assert wants_image("gemini-2.5-flash-image", text)
    assert not wants_image("gemini-2.5-flash", text)
    modal = enc({"contents": [], "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}})
    assert wants_image("gemini-2.5-flash", modal)
    wide = enc({"contents": [{"parts": [{"text": "wide"}]}],
                "generationConfig": {"imageConfig": {"aspectRatio": "16:9"}}})  # fmt: skip
    job = gemini_image_job(wide)
    assert (job.prompt, job.size, job.response_format) == ("wide", "1824x1024", "b64_json")
    edit = enc({"contents": [{"parts": [{"text": "x"}, {"inlineData": {"data": "AA=="}}]}]})
    with pytest.raises(ClientRequestError, match="editing"):
        gemini_image_job(edit)
    part = gemini_image_answer("m", "QUJD")["candidates"][0]["content"]["parts"][0]
    assert part == {"inlineData": {"mimeType": "image/png", "data": "QUJD"}}


# --- the Responses image tool ---------------------------------------------------------------


def _answer(rid: str, *items: dict[str, Any]) -> bytes:
    return enc({"id": rid, "object": "response", "created_at": 7, "status": "completed",
                "output": list(items), "usage": {"input_tokens": 10, "output_tokens": 2,
                                                 "total_tokens": 12}})  # fmt: skip


def test_the_image_tool_plan_offers_a_function_and_merges_rounds() -> None:
    body = enc({"model": "m", "input": "draw", "stream": True,
                "tools": [{"type": "image_generation", "quality": "high"}, {"type": "function",
                          "name": "ls", "parameters": {}}],
                "tool_choice": {"type": "image_generation"}})  # fmt: skip
    assert has_image_tool(body) and not has_image_tool(enc({"tools": [{"type": "web_search"}]}))
    plan = ImageToolPlan.from_body(body)
    first = msgspec.json.decode(plan.round_body())
    assert first["stream"] is False and first["input"] == [{"role": "user", "content": "draw"}]
    assert [t.get("name") for t in first["tools"]] == ["ls", "image_generation"]
    assert first["tool_choice"] == {"type": "function", "name": "image_generation"}
    args = '{"prompt": "a cat", "size": "1024x1024"}'
    call = {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "image_generation",
            "arguments": args, "status": "completed"}  # fmt: skip
    (made,) = plan.feed(_answer("resp_1", call))
    assert (made.prompt, made.size, made.failure) == ("a cat", "1024x1024", None)
    item = plan.record(made, "QUJD", "1024x1024", None)
    assert (item["type"], item["status"], item["result"], item["quality"]) == (
        "image_generation_call", "completed", "QUJD", "high")  # fmt: skip
    second = msgspec.json.decode(plan.round_body())
    assert second["input"][-1]["type"] == "function_call_output"
    assert "QUJD" not in str(second)  # GLM never gets the image data back
    message = {"type": "message", "id": "m1", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "done", "annotations": []}]}  # fmt: skip
    assert plan.feed(_answer("resp_2", message)) == []
    result = plan.result()
    assert result["id"] == "resp_1" and [i["type"] for i in result["output"]] == [
        "image_generation_call", "message"]  # fmt: skip
    assert result["usage"]["total_tokens"] == 24
    assert plan.totals() == (20, 0, 4)  # (uncached input, cached, output) over both rounds


def test_a_call_without_a_prompt_fails_for_glm_and_the_client() -> None:
    plan = ImageToolPlan.from_body(enc({"input": [], "tools": [{"type": "image_generation"}]}))
    call = {"type": "function_call", "call_id": "c1", "name": "image_generation",
            "arguments": "{}"}  # fmt: skip
    (made,) = plan.feed(_answer("r", call))
    assert made.failure
    assert plan.record(made, None, "", None)["status"] == "failed"
    assert "failed" in plan.inputs[-1]["output"]


def test_event_writer_numbers_every_event() -> None:
    writer = EventWriter()
    message = {"type": "message", "id": "m1", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "hi", "annotations": []}]}  # fmt: skip
    data = writer.start({"id": "r"}) + writer.item(0, message)
    events = [
        msgspec.json.decode(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: ")
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done"]  # fmt: skip
