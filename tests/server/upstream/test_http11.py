"""The server's own upstream transport (glmbridge_server/upstream/http11.py) on real loopback
sockets: keep-alive reuse, one piece per socket read, the body framings, the pool's limit,
stale connections, and failures raised as httpx2's exceptions (what the boundary maps)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from glmbridge_server.upstream.http11 import Http11Transport
from tests.support.certificates import self_signed

pytestmark = pytest.mark.anyio

Reply = Callable[[int], list[bytes | float | None]]  # per request: writes, pauses, None = close


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENTS = [b"data: %d\n\n" % i for i in range(50)]


@asynccontextmanager
async def upstream(
    reply: Reply, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback HTTP/1.1 server (HTTPS with ``tls``): ``reply(n)`` scripts the n-th request
    (0-based) of the whole server; yields its URL and the number of requests per connection."""
    per_conn: list[int] = []
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        per_conn.append(0)
        index = len(per_conn) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                per_conn[index] += 1
                n, served = served, served + 1
                for step in reply(n):
                    if step is None:
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                        continue
                    writer.write(step)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1/x", per_conn
    finally:
        server.close()


def client(**limits: int) -> httpx2.AsyncClient:
    transport = Http11Transport(limits=httpx2.Limits(**limits), trust_env=False)
    return httpx2.AsyncClient(transport=transport, timeout=5.0, trust_env=False)


def answer(events: list[bytes] = EVENTS) -> list[bytes | float | None]:
    """A chunked stream written in one write: every event is already there."""
    return [HEAD + b"".join(chunk(e) for e in events) + b"0\r\n\r\n"]


async def test_keep_alive_and_one_piece_per_read() -> None:
    async with upstream(lambda n: answer()) as (url, per_conn), client() as http:
        for _ in range(3):
            async with http.stream("POST", url, content=b"{}") as r:
                pieces = [p async for p in r.aiter_raw()]
            assert r.status_code == 200
            assert b"".join(pieces) == b"".join(EVENTS)
            assert len(pieces) < len(EVENTS)  # the events already there: coalesced
    assert per_conn == [3]


async def test_content_length_and_close_delimited_bodies() -> None:
    def reply(n: int) -> list[bytes | float | None]:
        if n == 0:
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
        return [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"a\":", 0.02,
                b" 1}", None]  # fmt: skip

    async with upstream(reply) as (url, per_conn), client() as http:
        first = await http.post(url, content=b"{}")
        second = await http.post(url, content=b"{}")
    assert (first.status_code, first.content) == (200, b"hello")
    assert second.json() == {"a": 1}
    assert per_conn == [2]


async def test_cut_body_and_garbage_are_protocol_errors_after_the_good_part() -> None:
    good = b"".join(chunk(e) for e in EVENTS[:3])

    def reply(n: int) -> list[bytes | float | None]:
        if n == 0:
            return [HEAD + good, 0.02, None]  # no final chunk
        return [HEAD + good + b"zz not a chunk\r\n"]

    async with upstream(reply) as (url, _), client() as http:
        for _ in range(2):
            got: list[bytes] = []
            with pytest.raises(httpx2.RemoteProtocolError):
                async with http.stream("POST", url, content=b"{}") as r:
                    async for piece in r.aiter_raw():
                        got.append(piece)
            assert b"".join(got) == b"".join(EVENTS[:3])


async def test_stale_idle_connection_is_replaced() -> None:
    def reply(n: int) -> list[bytes | float | None]:
        return [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 0.01, None]

    async with upstream(reply) as (url, per_conn), client() as http:
        assert (await http.post(url, content=b"{}")).content == b"ok"
        await anyio.sleep(0.1)  # the server has closed the idle connection
        assert (await http.post(url, content=b"{}")).content == b"ok"
    assert per_conn == [1, 1]


async def test_pool_limit_and_timeouts() -> None:
    def reply(n: int) -> list[bytes | float | None]:
        if n == 0:
            return [HEAD, 1.0]
        return [HEAD + chunk(b"data: late\n\n"), 1.0]

    async with upstream(reply) as (url, _), client(max_connections=1) as http:
        async with http.stream("POST", url, content=b"{}") as r:
            assert r.status_code == 200
            with pytest.raises(httpx2.PoolTimeout):
                await http.post(url, content=b"{}", timeout=httpx2.Timeout(5.0, pool=0.05))
            with pytest.raises(httpx2.ReadTimeout):
                async for _ in r.aiter_raw():
                    pass
        # the slot is free again once the response is closed
        r2 = await http.send(
            http.build_request("POST", url, content=b"{}", timeout=httpx2.Timeout(0.2)),
            stream=True,
        )
        with pytest.raises(httpx2.ReadTimeout):
            await r2.aread()  # got one piece, then silence
        await r2.aclose()


async def test_connect_error() -> None:
    with anyio.fail_after(5):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there now
        async with client() as http:
            with pytest.raises(httpx2.ConnectError):
                await http.post(f"http://127.0.0.1:{port}/", content=b"{}")


async def test_tls_verified_reused_and_refused_when_untrusted(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(str(cert), str(key))
    trusting = ssl.create_default_context(cafile=str(cert))
    async with upstream(lambda n: answer(), tls=server_tls) as (url, per_conn):
        transport = Http11Transport(ssl_context=trusting)
        async with httpx2.AsyncClient(transport=transport, timeout=5.0) as http:
            for _ in range(2):
                async with http.stream("POST", url, content=b"{}") as r:
                    pieces = [p async for p in r.aiter_raw()]
                assert b"".join(pieces) == b"".join(EVENTS)
        assert per_conn == [2]
        async with client() as http:  # the system's CAs: the self-signed cert is refused
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post(url, content=b"{}")


async def test_bytes_after_a_complete_response_are_ignored_and_not_reused() -> None:
    def reply(n: int) -> list[bytes | float | None]:
        if n == 0:
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokGARBAGE\r\n\r\n"]
        return [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext"]

    async with upstream(reply) as (url, per_conn), client() as http:
        first = await http.post(url, content=b"{}")
        second = await http.post(url, content=b"{}")
    assert (first.status_code, first.content) == (200, b"ok")
    assert second.content == b"next"
    assert per_conn == [1, 1]  # the first connection was not reused
