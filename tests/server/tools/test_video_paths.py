"""Videos named by path in the user's turn (issue 12, "Video"): off by default; when
``video_dirs`` is set, only real video files inside those directories, within the size cap,
are attached, and the turn routes to a video-capable model. Every refusal is a case here."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest
from starlette.applications import Starlette

from glmbridge import ir
from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings, SettingsError, load_settings
from glmbridge_server.tools.video_paths import attach_videos, find_video
from tests.support.servers import RunningServer
from tests.support.simulator import chats

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 60


def _turn(text: str) -> ir.Request:
    return ir.Request(
        model="glm-4.7",
        messages=[
            ir.Message(role="user", content=[ir.TextBlock(text="earlier /x/old.mp4")]),
            ir.Message(role="assistant", content=[ir.TextBlock(text="ok")]),
            ir.Message(role="user", content=[ir.TextBlock(text=text)]),
        ],
    )


def _videos(req: ir.Request) -> list[ir.VideoBlock]:
    return [b for b in req.messages[-1].content if isinstance(b, ir.VideoBlock)]


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    (root / "clip.mp4").write_bytes(MP4)
    (root / "talk.webm").write_bytes(WEBM)
    (root / "fake.mp4").write_bytes(b"#!/bin/sh\necho not a video\n")
    (root / "big.mp4").write_bytes(MP4 + b"\x00" * 5000)
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(MP4)
    (root / "link.mp4").symlink_to(outside)
    return root


def test_off_by_default(media: Path) -> None:
    req = _turn(f"what happens in {media}/clip.mp4?")
    assert attach_videos(req, (), 10_000) is req


def test_a_video_inside_the_directories_is_attached(media: Path) -> None:
    req = attach_videos(_turn(f'look at "{media}/clip.mp4" and {media}/talk.webm.'), (str(media),),
                        10_000)  # fmt: skip
    videos = _videos(req)
    assert [v.source.media_type for v in videos] == ["video/mp4", "video/webm"]
    assert base64.b64decode(videos[0].source.data or "") == MP4
    assert req.messages[-1].content[0] == ir.TextBlock(
        text=f'look at "{media}/clip.mp4" and {media}/talk.webm.'
    )
    assert not any(isinstance(b, ir.VideoBlock) for b in req.messages[0].content)


@pytest.mark.parametrize(
    "name",
    [
        "link.mp4",  # a symlink out of the directory
        "../secret.mp4",  # .. out of the directory
        "fake.mp4",  # not the container its name says
        "big.mp4",  # over video_max_bytes
        "missing.mp4",
    ],
)
def test_refusals(media: Path, name: str) -> None:
    assert find_video(f"{media}/{name}", (str(media),), 1000) is None
    req = _turn(f"see {media}/{name}")
    assert attach_videos(req, (str(media),), 1000) is req


def test_a_path_outside_every_directory_is_left_as_text(media: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    req = _turn(f"see {media}/clip.mp4")
    assert attach_videos(req, (str(other),), 10_000) is req


def test_at_most_two_videos_per_turn(media: Path) -> None:
    for n in range(4):
        (media / f"c{n}.mp4").write_bytes(MP4)
    text = " ".join(f"{media}/c{n}.mp4" for n in range(4))
    assert len(_videos(attach_videos(_turn(text), (str(media),), 10_000))) == 2


def test_video_dirs_must_be_absolute(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="absolute"):
        load_settings(environ={"GLMBRIDGE_VIDEO_DIRS": "videos"}, cwd=tmp_path)
    home = os.path.expanduser("~")
    got = load_settings(environ={"GLMBRIDGE_VIDEO_DIRS": "~/v,/srv/v"}, cwd=tmp_path)
    assert got.video_dirs == (f"{home}/v", "/srv/v")


@pytest.mark.e2e
def test_the_turn_reaches_a_video_model_with_the_video(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    media: Path,
) -> None:
    settings = bridge_settings(sim.url, video_dirs=(str(media),), upstream=f"{sim.url}/api/paas/v4")
    bridge = start_server(create_app(settings))
    with anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0) as client:
        message = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64,
            messages=[{"role": "user", "content": f"What happens in {media}/clip.mp4?"}],
        )  # fmt: skip
    assert message.content
    sent = chats(sim)[-1]
    parts = sent["messages"][-1]["content"]
    urls = [p["video_url"]["url"] for p in parts if p.get("type") == "video_url"]
    assert urls and base64.b64decode(urls[0].removeprefix("data:video/mp4;base64,")) == MP4
    assert sent["model"] != "glm-4.7"  # routed to a video-capable model


# --- races (issue 24, item 5) -------------------------------------------------------------------


def test_a_fifo_is_refused_without_blocking(media: Path) -> None:
    import threading

    os.mkfifo(media / "pipe.mp4")
    found: list[object] = []
    lookup = threading.Thread(
        target=lambda: found.append(find_video(str(media / "pipe.mp4"), [str(media)], 1 << 20)),
        daemon=True,
    )
    lookup.start()
    lookup.join(2.0)
    assert not lookup.is_alive(), "opening a FIFO blocked"
    assert found == [None]


def test_swapping_files_and_directories_never_sends_an_outside_file(tmp_path: Path) -> None:
    from tests.server.attack_defects import race_video_paths

    assert race_video_paths(tmp_path, attempts=400) == []
