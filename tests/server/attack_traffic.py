"""Defect attacks on traffic control (issue 24, items 1, 6 and 7), each against bridges of
its own in front of a paced fault upstream, with a real redis-server where it matters.

* :func:`redis_hangups` — clients that hang up within 0.5-4 ms, with Redis healthy and
  then paused (SIGSTOP): no slot may stay taken, and the key must still serve at once.
* :func:`redis_fairness` — two bridges sharing one key through Redis, requests arriving
  alternately: served first come, first served (within one place).
* :func:`retry_after_spread` — a queue that times out many requests at once: their
  ``retry-after`` follows the queue's drain time and is spread out.
"""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx2

from glmbridge_server.edge.app import create_app
from tests.server.faults import (
    FaultServer,
    Pause,
    Plan,
    RecordedRequest,
    answer,
    glm_completion,
    json_plan,
    stream_plan,
)
from tests.server.redis_server import RedisServer
from tests.support.servers import RunningServer, make_bridge_settings, run_in_thread

if TYPE_CHECKING:
    from tests.server.attack import Outcome, Target

__all__ = ["redis_fairness", "redis_hangups", "retry_after_spread"]

_BODY = {"model": "glm-4.7", "max_tokens": 16, "stream": True,
         "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip


def _outcome(name: str, started: float, problem: str | None, status: int | None = None) -> Outcome:
    from tests.server.attack import Outcome

    return Outcome(name, "any", status, time.monotonic() - started, problem=problem)


def _paced(hold: float, seen: list[str] | None = None) -> Callable[[RecordedRequest], Plan]:
    """An upstream that answers (streamed or not, as asked) after ``hold`` seconds; the
    last user text of each request goes to ``seen``, in the order they arrived."""

    def choose(request: RecordedRequest) -> Plan:
        try:
            body = json.loads(request.body)
            streamed = bool(body.get("stream"))
            if seen is not None:
                seen.append(str(body["messages"][-1]["content"]))
        except (ValueError, AttributeError, LookupError, TypeError):
            streamed = False
        if streamed:
            return stream_plan(Pause(hold), *answer("Hi"))
        plan = json_plan(glm_completion("Hi"))
        return dataclasses.replace(plan, parts=(Pause(hold), *plan.parts))

    return choose


@contextmanager
def _bridges(
    hold: float, count: int = 1, seen: list[str] | None = None, **settings: Any
) -> Iterator[list[RunningServer]]:
    with FaultServer() as upstream:
        upstream.reset(chooser=_paced(hold, seen))
        config = make_bridge_settings(upstream.url, key_slots=(1,), **settings)
        servers = [run_in_thread(create_app(config)) for _ in range(count)]
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


def _request(url: str, tag: str = "hi") -> bytes:
    body = {**_BODY, "messages": [{"role": "user", "content": tag}]}
    data = json.dumps(body).encode()
    return (
        f"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
        f"x-api-key: x\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode() + data


def _hang_up(address: tuple[str, int], after: float) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(_request("x"))
        time.sleep(after)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST


def _in_use(url: str) -> int:
    return int(httpx2.get(f"{url}/status", timeout=5).json()["slots"]["in_use"])


def _arrivals(http: httpx2.Client, url: str) -> int:
    """Requests that have reached the bridge's scheduler: each either took a slot at once
    or waits in the queue (and takes one later), so this sum only grows by arrivals."""
    status = http.get(f"{url}/status").json()
    return int(status["scheduled"]["granted"]) + sum(status["queue"].values())


def redis_hangups(target: Target) -> list[Outcome]:
    """Item 1: 100 hang-ups with Redis healthy, 10 with it paused; then nothing in use."""
    out = []
    rng = random.Random(24)
    with (
        RedisServer() as redis,
        _bridges(0.05, redis_url=redis.url, max_queue_wait=5) as [b],
    ):
        host, port = b.url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        for phase, count, delays in (("healthy", 100, (0.0005, 0.004)),
                                     ("paused", 10, (0.02, 0.3))):  # fmt: skip
            started = time.monotonic()
            if phase == "paused":
                redis.pause()
            try:
                threads = [threading.Thread(target=_hang_up, args=(address, rng.uniform(*delays)))
                           for _ in range(count)]  # fmt: skip
                for thread in threads:
                    thread.start()
                    time.sleep(0.002)
                for thread in threads:
                    thread.join(10)
            finally:
                redis.resume()
            time.sleep(3.5 if phase == "paused" else 0.5)  # Redis is tried again after 3 s
            used = _in_use(b.url)
            took = time.monotonic()
            served = httpx2.post(f"{b.url}/v1/messages", json=_BODY, timeout=10).status_code
            took = time.monotonic() - took
            problem = None
            if used or served != 200 or took > 2.0:
                problem = f"{used} slot(s) still in use; then {served} in {took:.1f} s"
            out.append(_outcome(f"redis-hangups:{phase}", started, problem, served))
    return out


def redis_fairness(target: Target) -> list[Outcome]:
    """Item 6: 16 requests, alternately on two bridges sharing one key through Redis, each
    holding it about 0.25 s: served in arrival order within one place."""
    started = time.monotonic()
    seen: list[str] = []
    with (
        RedisServer() as redis,
        _bridges(0.25, 2, seen, redis_url=redis.url, max_queue_wait=30) as bridges,
    ):

        def one(i: int) -> None:
            body = {**_BODY, "messages": [{"role": "user", "content": f"r{i}"}]}
            httpx2.post(f"{bridges[i % 2].url}/v1/messages", json=body, timeout=30)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        with httpx2.Client(timeout=5) as http:
            for i, thread in enumerate(threads):
                # the next request is sent once this one is in its bridge's scheduler: the
                # arrival order is then known, however busy the machine
                url = bridges[i % 2].url
                before = _arrivals(http, url)
                thread.start()
                deadline = time.monotonic() + 5
                while _arrivals(http, url) == before and time.monotonic() < deadline:
                    time.sleep(0.002)
        for thread in threads:
            thread.join(30)
    order = [int(text[1:]) for text in seen if text[:1] == "r" and text[1:].isdigit()]
    unfair = [(place, i) for place, i in enumerate(order) if abs(place - i) > 1]
    problem = f"served out of order: {order}" if unfair or len(order) != 16 else None
    return [_outcome("redis-fairness", started, problem, 200)]


def retry_after_spread(target: Target) -> list[Outcome]:
    """Item 7: 12 requests behind one slot held 1.5 s, giving up after 1 s: their
    retry-after must not all be 1 s, nor all equal."""
    started = time.monotonic()
    retries: list[str] = []
    with _bridges(1.5, max_queue_wait=1.0) as [b]:

        def one(_: int) -> None:
            body = {**_BODY, "stream": False}
            response = httpx2.post(f"{b.url}/v1/messages", json=body, timeout=10)
            if response.status_code == 429:
                retries.append(response.headers.get("retry-after", ""))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    values = [float(v) for v in retries if v.replace(".", "", 1).isdigit()]
    problem = None
    if len(values) < 8 or len(set(values)) < 3 or max(values, default=0) <= 1:
        problem = f"retry-after of {len(retries)} queue timeouts: {sorted(retries)}"
    return [_outcome("retry-after-spread", started, problem, 429)]
