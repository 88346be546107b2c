"""The listening socket makes asyncio turn Nagle off on accepted connections.

Without TCP_NODELAY every small SSE frame of a short answer waits for the client's
delayed ACK: the server benchmark measured a ~40 ms stall per streamed request.
"""

from __future__ import annotations

import asyncio
import socket

from glmbridge_server.cli import _bind


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def main() -> int:
        sock = _bind("127.0.0.1", 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handler, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            nodelay = await asyncio.wait_for(seen, 5)
            writer.close()
        return nodelay

    assert asyncio.run(main()) != 0
