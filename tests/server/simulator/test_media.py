"""The simulator's media APIs (glmbridge_server.simulator.media), golden shapes.

Sources: docs.z.ai/api-reference/image/generate-image (``{created, data: [{url}],
content_filter: [{role, level}]}``), docs.z.ai/api-reference/video/generate-video
(``{model, id, request_id, task_status}``), docs.z.ai/api-reference/video/get-video-status
(``{model, video_result: [{url, cover_image_url}], task_status, request_id}``); a Coding
Plan key on these endpoints gets 429/1113 (openclaw docs commit 531b31e;
zhayujie/CowAgent#2910), with Z.ai's message for 1113 (``simulator.catalog``).
"""

from __future__ import annotations

import struct
from typing import Any

import httpx2
import pytest

from glmbridge_server.simulator.media import init_media
from tests.support.servers import RunningServer

PAYG = "/api/paas/v4"
CODING = "/api/coding/paas/v4"
KEY = {"authorization": "Bearer media-key"}
RECHARGE = "Insufficient balance or no resource package. Please recharge."
BALANCE = {"error": {"code": "1113", "message": RECHARGE}}


@pytest.fixture
def media(sim: RunningServer) -> RunningServer:
    init_media(sim.app.state)
    return sim


def post(
    sim: RunningServer, path: str, body: Any, headers: dict[str, str] = KEY
) -> httpx2.Response:
    return httpx2.post(sim.url + path, json=body, headers=headers, timeout=10)


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, data[pos + 8 : pos + size]))
        pos += size
    return out


def child(data: bytes, *path: bytes) -> bytes:
    for kind in path:
        data = dict(boxes(data))[kind]
    return data


def test_an_image_is_a_temporary_url_to_a_png_drawn_at_the_size(media: RunningServer) -> None:
    reply = post(media, f"{PAYG}/images/generations",
                 {"model": "glm-image", "prompt": "a kite", "size": "1088x1920"})  # fmt: skip
    assert reply.status_code == 200
    body = reply.json()
    assert sorted(body) == ["content_filter", "created", "data"]
    assert isinstance(body["created"], int)
    assert body["content_filter"] == [{"role": "assistant", "level": 3}]
    (item,) = body["data"]
    assert list(item) == ["url"] and item["url"].startswith(f"{media.url}{PAYG}/files/")
    png = httpx2.get(item["url"]).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1088, 1920)
    assert b"tEXtprompt\x00a kite" in png


@pytest.mark.parametrize(
    ("body", "code"),
    [({"model": "glm-image", "prompt": "x", "size": "1000x1000"}, "1214"),  # off the grid
     ({"model": "cogview-4-250304", "prompt": "x", "size": "4096x4096"}, "1214"),
     ({"model": "glm-image"}, "1214"),
     ({"model": "dall-e-3", "prompt": "x"}, "1211")],
)  # fmt: skip
def test_what_the_image_api_refuses(media: RunningServer, body: dict[str, Any], code: str) -> None:
    reply = post(media, f"{PAYG}/images/generations", body)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/images/generations"), ("POST", "/videos/generations"),
     ("GET", "/async-result/123")],
)  # fmt: skip
def test_the_coding_plan_path_is_1113(media: RunningServer, method: str, path: str) -> None:
    body = {"model": "glm-image", "prompt": "x"}
    reply = httpx2.request(method, media.url + CODING + path, headers=KEY,
                           json=body if method == "POST" else None)  # fmt: skip
    assert (reply.status_code, reply.json()) == (429, BALANCE)


def test_keys_the_simulator_refuses(media: RunningServer) -> None:
    body = {"model": "glm-image", "prompt": "x"}
    broke = post(media, f"{PAYG}/images/generations", body, {"authorization": "Bearer broke-key"})
    assert (broke.status_code, broke.json()) == (429, BALANCE)
    bad = post(media, f"{PAYG}/images/generations", body, {"authorization": "Bearer bad-key"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "1000"


def test_a_video_task_processes_then_succeeds_with_a_one_frame_mp4(media: RunningServer) -> None:
    created = post(media, f"{PAYG}/videos/generations",
                   {"model": "cogvideox-3", "prompt": "surf", "size": "1920x1080",
                    "duration": 10})  # fmt: skip
    body = created.json()
    assert sorted(body) == ["id", "model", "request_id", "task_status"]
    assert (body["model"], body["task_status"]) == ("cogvideox-3", "PROCESSING")
    poll = f"{media.url}{PAYG}/async-result/{body['id']}"
    states = [httpx2.get(poll, headers=KEY).json() for _ in range(3)]
    assert [s["task_status"] for s in states] == ["PROCESSING", "PROCESSING", "SUCCESS"]
    done = states[-1]
    assert sorted(done) == ["model", "request_id", "task_status", "video_result"]
    (result,) = done["video_result"]
    assert sorted(result) == ["cover_image_url", "url"]
    mp4 = httpx2.get(result["url"]).content
    cover = httpx2.get(result["cover_image_url"]).content
    assert [kind for kind, _ in boxes(mp4)] == [b"ftyp", b"mdat", b"moov"]
    mvhd = child(mp4, b"moov", b"mvhd")
    assert struct.unpack(">II", mvhd[12:20]) == (1000, 10_000)  # timescale, 10 s
    stbl = child(mp4, b"moov", b"trak", b"mdia", b"minf", b"stbl")
    assert child(stbl, b"stsd")[12:16] == b"png "  # one sample entry: a PNG frame
    (offset,) = struct.unpack(">I", child(stbl, b"stco")[8:12])
    (size,) = struct.unpack(">I", child(stbl, b"stsz")[12:16])
    assert mp4[offset : offset + size] == cover and cover.startswith(b"\x89PNG")


def test_a_task_belongs_to_its_key_and_can_fail(media: RunningServer) -> None:
    task = post(media, f"{PAYG}/videos/generations",
                {"model": "cogvideox-3", "prompt": "x [[sim:fail]]"}).json()  # fmt: skip
    poll = f"{media.url}{PAYG}/async-result/{task['id']}"
    other = httpx2.get(poll, headers={"authorization": "Bearer another-key"})
    assert other.status_code == 400 and other.json()["error"]["code"] == "1214"
    states = [httpx2.get(poll, headers=KEY).json()["task_status"] for _ in range(3)]
    assert states == ["PROCESSING", "PROCESSING", "FAIL"]
