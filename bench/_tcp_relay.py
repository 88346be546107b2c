"""A zero-parse TCP relay (used by bench/bench_server.py when HAProxy is absent).

    python bench/_tcp_relay.py LISTEN_PORT TARGET_PORT

Every accepted connection on 127.0.0.1:LISTEN_PORT gets its own connection to
127.0.0.1:TARGET_PORT; bytes are copied both ways as they come, nothing is parsed. It is the
floor of any gateway: one more socket hop. Runs on uvloop when installed, as uvicorn does.
Not a test and not part of the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(target: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        writer.close()
        return
    for w in (writer, up_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def main(listen: int, target: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(target, r, w), "127.0.0.1", listen, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
