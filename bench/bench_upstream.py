"""Upstream HTTP client comparison (issue 22, item 3; not a test: pytest never collects it).

    python bench/bench_upstream.py            # ~30 s on 2 cores
    python bench/bench_upstream.py --quick    # ~10 s

How much does it cost to *read* the upstream's answer, for each candidate behind our one
transport boundary? One GLM simulator (``bench/_sim_runner.py``), one process reading it on
uvloop (as the server does), the variants interleaved request by request in a rotating order:

* **httpx2**: ``httpx2.AsyncClient().stream(...)`` + ``aiter_raw()``, what the relay does
  today (httpcore2 parses the response with h11, one ``Data`` event per chunk of the
  upstream's chunked encoding);
* **httptools**: a minimal keep-alive client on asyncio streams with ``httptools`` parsing the
  response (``HttpResponseParser``), yielding everything one socket read brought in one piece:
  what a transport of our own would do;
* **aiohttp**: ``aiohttp.ClientSession`` + ``response.content.iter_any()`` (everything
  buffered), when importable (``pip install --target /tmp/aiohttp-lib aiohttp``; it is not a
  project dependency, and that directory is added to ``sys.path`` here only).

Workloads: the 2000-chunk stream and the 76 KB Claude Code request of ``bench_server.py``
(the GLM chat bodies). Reported per variant: p50 and minimum wall time per request, this
process's CPU per request (``time.process_time``), and how many pieces the client yielded
(each piece is one ``feed`` of the stream machine and one ASGI ``send`` in the relay).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httptools
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import SIM_BASE, Servers, start_simulator, workload_a, workload_b

AIOHTTP_LIB = Path("/tmp/aiohttp-lib")
HEADERS = {
    "authorization": "Bearer bench-key",
    "content-type": "application/json",
    "accept": "text/event-stream",
}


class RawClient:
    """One keep-alive HTTP/1.1 connection: asyncio streams + httptools (the prototype)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._body: list[bytes] = []
        self._done = False
        self.status = 0

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done = True

    async def stream(self, path: str, body: bytes, headers: dict[str, str]) -> AsyncIterator[bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        parser = httptools.HttpResponseParser(self)
        self._done = False
        while not self._done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            parser.feed_data(data)
            if self._body:
                piece = b"".join(self._body) if len(self._body) > 1 else self._body[0]
                self._body.clear()
                yield piece
        self.status = parser.get_status_code()

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="glmbridge-upstream-"))
    servers = Servers(tmp)
    try:
        sim = start_simulator(servers)
        url = f"{sim.url}{SIM_BASE}/chat/completions"
        path = f"{SIM_BASE}/chat/completions"
        _, a_glm, _ = workload_a()
        _, b_glm, _ = workload_b()
        http = httpx2.AsyncClient(trust_env=False, timeout=60.0)
        raw = RawClient("127.0.0.1", sim.port)
        session = None
        if AIOHTTP_LIB.exists() and not args.no_aiohttp:
            sys.path.insert(0, str(AIOHTTP_LIB))
            import aiohttp

            session = aiohttp.ClientSession()

        async def via_httpx2(body: bytes) -> int:
            async with http.stream("POST", url, content=body, headers=HEADERS) as r:
                return sum([1 async for _ in r.aiter_raw()])

        async def via_httptools(body: bytes) -> int:
            return sum([1 async for _ in raw.stream(path, body, HEADERS)])

        async def via_aiohttp(body: bytes) -> int:
            assert session is not None
            async with session.post(url, data=body, headers=HEADERS) as r:
                return sum([1 async for _ in r.content.iter_any()])

        variants: dict[str, Callable[[bytes], Any]] = {
            "httpx2": via_httpx2,
            "httptools": via_httptools,
        }
        if session is not None:
            variants["aiohttp"] = via_aiohttp
        out: dict[str, Any] = {}
        for label, body, n in (("b", b_glm, args.n_b), ("a", a_glm, args.n_a)):
            names = list(variants)
            wall: dict[str, list[float]] = {k: [] for k in names}
            cpu: dict[str, list[float]] = {k: [] for k in names}
            pieces: dict[str, list[int]] = {k: [] for k in names}
            for _ in range(3):  # warm-up
                for k in names:
                    await variants[k](body)
            for i in range(n):
                for k in names[i % len(names) :] + names[: i % len(names)]:
                    c0, t0 = time.process_time(), time.perf_counter()
                    count = await variants[k](body)
                    t1, c1 = time.perf_counter(), time.process_time()
                    wall[k].append((t1 - t0) * 1000)
                    cpu[k].append((c1 - c0) * 1000)
                    pieces[k].append(count)
            out[label] = {
                k: {
                    "n": n,
                    "p50_ms": statistics.median(wall[k]),
                    "min_ms": min(wall[k]),
                    "cpu_ms_mean": statistics.fmean(cpu[k]),
                    "cpu_ms_p50": statistics.median(cpu[k]),
                    "pieces_p50": statistics.median(pieces[k]),
                }
                for k in names
            }
        await http.aclose()
        await raw.aclose()
        if session is not None:
            await session.close()
        return out
    finally:
        servers.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-aiohttp", action="store_true")
    args = parser.parse_args()
    args.n_b, args.n_a = (10, 50) if args.quick else (40, 300)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    import os

    load = os.getloadavg()
    res = asyncio.run(run(args))
    print(f"load average before: {load[0]:.1f}")
    print("| workload | client | p50 ms | min ms | client CPU ms/request (mean, p50) | pieces |")
    print("|---|---|--:|--:|--:|--:|")
    for label, title in (("b", "2000-chunk stream"), ("a", "76 KB request, short answer")):
        for k, v in res[label].items():
            print(
                f"| {title} | {k} | {v['p50_ms']:.2f} | {v['min_ms']:.2f} | "
                f"{v['cpu_ms_mean']:.2f}, {v['cpu_ms_p50']:.2f} | {v['pieces_p50']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
