"""The defects of the second attack run (issue 24), as attacks that stay in the campaign.

Each function of :data:`DEFECTS` repeats one attack that once got through, against the part
of the bridge it hit, and returns :class:`~tests.server.attack.Outcome` records whose
``problem`` says what went wrong if the defect is back. Most build their own small target
(a bridge with Redis, a fetcher, a usage store): the campaign's bridge has none of them.
:func:`tests.server.attack.run_campaign` runs them once per campaign, in its pool.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx2

from glmbridge.webfetch import FetchedPage, FetchFailure, FetchOptions
from glmbridge_server.tools.web_fetcher import WebFetcher
from tests.server.attack_traffic import redis_fairness, redis_hangups, retry_after_spread

if TYPE_CHECKING:
    from tests.server.attack import Outcome, Target

__all__ = ["DEFECTS", "WRAPPED_LOOPBACK"]


def _outcome(name: str, started: float, problem: str | None, status: int | None = None) -> Outcome:
    from tests.server.attack import Outcome

    return Outcome(name, "any", status, time.monotonic() - started, problem=problem)


# --- item 8: IPv4 wrapped in IPv6 --------------------------------------------------------------

#: Internal addresses in every IPv6 wrapping (NAT64, local NAT64, 6to4, IPv4-compatible,
#: IPv4-translated, IPv4-mapped, Teredo) and site-local: all must be refused.
WRAPPED_LOOPBACK = (
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::7f00:1", "64:ff9b:1:7f00:0:100::",
    "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:a00:1::", "::127.0.0.1", "::10.0.0.1",
    "::ffff:0:127.0.0.1", "::ffff:0:a9fe:a9fe", "::ffff:127.0.0.1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "fec0::1", "fec0:1:2::3",
)  # fmt: skip


def wrapped_ipv6(target: Target) -> list[Outcome]:
    """Web fetch to every wrapped internal address, as a literal and as a DNS answer."""
    out = []
    sent: list[str] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(str(request.url))
        return httpx2.Response(200, text="internal", headers={"content-type": "text/plain"})

    names = {f"w{i}.test": address for i, address in enumerate(WRAPPED_LOOPBACK)}
    fetcher = WebFetcher(transport=httpx2.MockTransport(handle), resolve=lambda host: [names[host]])

    async def one(url: str) -> object:
        return await fetcher.fetch(url, FetchOptions())

    for name, address in names.items():
        for url in (f"http://[{address}]/", f"http://{name}/"):
            started = time.monotonic()
            result = anyio.run(one, url)
            ok = isinstance(result, FetchFailure) and result.error_code == "url_not_allowed"
            problem = None if ok and not sent else f"{url} was not refused: {result!r}"
            out.append(_outcome(f"ssrf:{address}", started, problem))
            sent.clear()
    return out


# --- item 2: hostile HTML ----------------------------------------------------------------------

#: Pages on which the standard library's parser is quadratic, and their relatives, each at
#: the 2 MiB page cap.
HOSTILE_PAGES = {
    "lt-a": "<a" * (1 << 20),
    "lt-space": "< " * (1 << 20),
    "nested": "<div>" * 200_000 + "x" + "</div>" * 200_000,
    "unclosed-comment": "<!--" + "x" * (2 << 20),
    "unclosed-attribute": '<a href="' + "<a " * 700_000,
    "stray-quotes": "<a <a '" * 300_000 + ">",
    "unclosed-script": "<script>" + "</scrip" * 300_000,
    "tags": "<b>x</b>" * 260_000,
}


def hostile_html(target: Target) -> list[Outcome]:
    """Each hostile page through web fetch while a ticker measures the event loop's worst
    stall: the loop must stay responsive and each fetch end (a page or an error block)."""
    out = []

    async def one(page: str) -> tuple[object, float]:
        def handle(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, text=page, headers={"content-type": "text/html"})

        fetcher = WebFetcher(
            transport=httpx2.MockTransport(handle), resolve=lambda h: ["93.184.216.34"],
            max_bytes=4 << 20,
        )  # fmt: skip
        worst = 0.0
        result: object = None

        async def tick() -> None:
            nonlocal worst
            while True:
                before = time.perf_counter()
                await anyio.sleep(0.01)
                worst = max(worst, time.perf_counter() - before - 0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            result = await fetcher.fetch("https://hostile.test/", FetchOptions())
            tg.cancel_scope.cancel()
        return result, worst

    for name, page in HOSTILE_PAGES.items():
        started = time.monotonic()
        result, worst = anyio.run(one, page)
        problem = None
        if not isinstance(result, (FetchedPage, FetchFailure)):
            problem = f"no page and no error: {result!r}"
        elif worst > 0.5:
            problem = f"the event loop stalled {worst:.2f} s"
        out.append(_outcome(f"html:{name}", started, problem, 200))
    return out


# --- item 3: quota answers -----------------------------------------------------------------------

#: Quota-endpoint answers with fields of every wrong type and range, one per poll.
QUOTA_ANSWERS: tuple[bytes, ...] = (
    json.dumps({"success": True, "code": 200, "data": {"limits": [
        {"type": "TOKENS_LIMIT", "unit": [3], "number": 5, "percentage": 99}]}}).encode(),
    json.dumps({"success": True, "code": 200, "data": {"limits": [
        {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "nextResetTime": 1e20}]}}).encode(),
    b'{"success": true, "code": 200, "data": {"limits": [{"type": "TOKENS_LIMIT", "unit": 3,'
    b' "percentage": 1' + b"0" * 400 + b', "nextResetTime": -1' + b"0" * 30 + b"}]}}",
    json.dumps({"success": True, "code": 200, "data": {"limits": [
        {"type": {"a": 1}}, None, {"type": "X" * 100_000}, [], {"type": "T", "unit": {}}]}})
    .encode(),
    json.dumps({"success": True, "code": 200, "data": {"limits": {"not": "a list"}}}).encode(),
    b"[" * 100_000,
    b"<html>quota</html>",
    b'{"success": true, "code": 200, "data": {"limits": [' + b'{"type": "T"},' * 40_000
    + b"{}]}}",
)  # fmt: skip


def quota_answers(target: Target) -> list[Outcome]:
    """A bridge polling a quota endpoint that answers :data:`QUOTA_ANSWERS` in turn, every
    50 ms: model requests keep being served and /health keeps the poller running."""
    from glmbridge_server.edge.app import create_app
    from tests.server.conftest import make_bridge_settings, run_in_thread
    from tests.server.faults import FaultServer, Plan, RecordedRequest, glm_completion, json_plan

    started = time.monotonic()
    polls = 0

    def choose(request: RecordedRequest) -> Plan:
        nonlocal polls
        if "quota" in request.path:
            polls += 1
            return json_plan(QUOTA_ANSWERS[polls % len(QUOTA_ANSWERS)])
        return json_plan(glm_completion("Hi"))

    body = {"model": "glm-4.7", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with FaultServer() as upstream:
        upstream.reset(chooser=choose)
        server = run_in_thread(create_app(make_bridge_settings(upstream.url, quota_poll=0.05)))
        try:
            with httpx2.Client(base_url=server.url, timeout=10) as http:
                statuses = []
                deadline = time.monotonic() + 10
                while polls < 3 * len(QUOTA_ANSWERS) and time.monotonic() < deadline:
                    statuses.append(http.post("/v1/messages", json=body).status_code)
                    time.sleep(0.05)
                health = http.get("/health").json()
        finally:
            server.stop()
    problem = None
    poller = health.get("background", {}).get("quota_poller", {})
    if set(statuses) != {200} or health.get("status") != "ok" or poller.get("failures"):
        problem = f"{polls} polls; statuses {sorted(set(statuses))}; /health {health}"
    return [_outcome("quota-answers", started, problem, 200)]


# --- item 4: usage rows the writer could not store ----------------------------------------------


def usage_overflow(target: Target) -> list[Outcome]:
    """20 answers reporting 2**63 or more tokens among 20 normal ones, on a bridge with a
    usage store: every row written, none lost, as /status says."""
    from glmbridge_server.edge.app import create_app
    from tests.server.conftest import make_bridge_settings, run_in_thread
    from tests.server.faults import FaultServer, glm_completion, json_plan

    started = time.monotonic()
    huge = glm_completion("Hi")
    huge["usage"] = {"prompt_tokens": 2**63, "completion_tokens": 2**64 - 1,
                     "total_tokens": 2**64 - 1}  # fmt: skip
    body = {"model": "glm-4.7", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    with (
        tempfile.TemporaryDirectory() as data,
        FaultServer(json_plan(huge), json_plan(glm_completion("Hi")), cycle=True) as upstream,
    ):
        server = run_in_thread(create_app(make_bridge_settings(upstream.url, data_dir=data)))
        try:
            with httpx2.Client(base_url=server.url, timeout=10) as http:
                statuses = [http.post("/v1/messages", json=body).status_code for _ in range(40)]
                deadline = time.monotonic() + 5
                while (rows := http.get("/status").json()["usage_rows"] or {}).get(
                    "written", 0
                ) + rows.get("lost", 0) < 40 and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            server.stop()
    problem = None
    if statuses.count(200) != 40 or rows["written"] != 40 or rows["lost"]:
        problem = f"statuses {sorted(set(statuses))}, usage rows {rows}"
    return [_outcome("usage-overflow", started, problem, 200)]


# --- item 5: raced video paths -----------------------------------------------------------------

VIDEO_INSIDE = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8 + b"INSIDE" + b"\x00" * 58
VIDEO_OUTSIDE = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8 + b"SECRET" + b"\x00" * 58


def race_video_paths(base: Path, attempts: int = 300) -> list[str]:
    """Swap ``clip.mp4`` (and its directory) between a video inside ``video_dirs``, a
    symlink to one outside, a symlink to an outside directory, and a FIFO, as fast as
    possible, while the path is looked up ``attempts`` times. Returns what went wrong: an
    outside file attached, or a lookup that hung."""
    from glmbridge_server.tools.video_paths import find_video

    root, outside = base / "videos", base / "outside"
    for folder in (root / "sub", outside):
        folder.mkdir(parents=True)
    (outside / "clip.mp4").write_bytes(VIDEO_OUTSIDE)
    target = root / "sub" / "clip.mp4"
    stop = threading.Event()

    def swap() -> None:
        spare = root / "spare"
        n = 0
        while not stop.is_set():
            n += 1
            tmp = root / f"swap-{n % 2}"
            with contextlib.suppress(OSError):
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink(missing_ok=True)
                form = n % 4
                if form == 0:  # the real thing
                    tmp.write_bytes(VIDEO_INSIDE)
                    os.replace(tmp, target)
                elif form == 1:  # a symlink out
                    tmp.symlink_to(outside / "clip.mp4")
                    os.replace(tmp, target)
                elif form == 2:  # a FIFO
                    os.mkfifo(tmp)
                    os.replace(tmp, target)
                else:  # the directory itself becomes a symlink out, then comes back
                    os.replace(root / "sub", spare)
                    (root / "sub").symlink_to(outside)
                    time.sleep(0.0005)
                    (root / "sub").unlink()
                    os.replace(spare, root / "sub")

    problems: list[str] = []
    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        for _ in range(attempts):
            found: list[object] = []
            lookup = threading.Thread(
                target=lambda out=found: out.append(find_video(str(target), [str(root)], 1 << 20)),
                daemon=True,
            )
            lookup.start()
            lookup.join(2.0)
            if lookup.is_alive():
                problems.append("a lookup hung (a FIFO?)")
                break
            video = found[0]
            if video is not None and b"SECRET" in base64.b64decode(video.source.data):  # type: ignore[attr-defined]
                problems.append("a file outside video_dirs was attached")
    finally:
        stop.set()
        swapper.join(5)
    return problems


def video_races(target: Target) -> list[Outcome]:
    """:func:`race_video_paths` in a temporary directory."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as base:
        problems = race_video_paths(Path(base))
    return [_outcome("video-races", started, "; ".join(sorted(set(problems))) or None, 200)]


# --- item 9: /status after POST /config ---------------------------------------------------------


def status_after_config(target: Target) -> list[Outcome]:
    """``POST /config`` new slot limits; ``/status`` must show them at once (then restore)."""
    started = time.monotonic()
    headers = target.headers()
    with httpx2.Client(base_url=target.url, headers=headers, timeout=10) as http:
        before = [k["limit"] for k in http.get("/status").json()["keys"]]
        wanted = [min(10_000, n + 1) for n in before]
        answer = http.post("/config", json={"key_slots": wanted})
        keys = http.get("/status").json()["keys"]
        http.post("/config", json={"key_slots": before})
    # a limit learned from a 1302 (the fault phase sends some) rightly stays until it expires
    shown = [k["limit"] for k in keys if not k["learned"]]
    expected = [n for n, k in zip(wanted, keys, strict=True) if not k["learned"]]
    problem = None if shown == expected else f"/status showed {shown}, not {expected}"
    return [_outcome("status-after-config", started, problem, answer.status_code)]


#: Each defect attack: a name and a function of the campaign's target giving its outcomes.
DEFECTS: dict[str, Callable[[Target], list[Outcome]]] = {
    "wrapped-ipv6": wrapped_ipv6,
    "status-after-config": status_after_config,
    "hostile-html": hostile_html,
    "usage-overflow": usage_overflow,
    "quota-answers": quota_answers,
    "video-races": video_races,
    "redis-hangups": redis_hangups,
    "redis-fairness": redis_fairness,
    "retry-after-spread": retry_after_spread,
}
