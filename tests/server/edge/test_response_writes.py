"""A response's head goes out with its first body bytes (issue 22): one socket write and one
wake-up of the client instead of two, with every byte in order and nothing held past the
event loop's turn or a close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from glmbridge_server.edge.inbound import _HeadWithBody

pytestmark = pytest.mark.anyio


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def _wrapped() -> tuple[_Transport, _HeadWithBody]:
    raw = _Transport()
    return raw, _HeadWithBody(raw, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_the_head_and_the_first_body_bytes_are_one_write() -> None:
    raw, transport = _wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"5\r\nhello\r\n")
    transport.write(b"0\r\n\r\n")
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n", b"0\r\n\r\n"]
    await asyncio.sleep(0)  # the held head's flush finds nothing left to send
    assert len(raw.writes) == 2


async def test_a_head_alone_goes_out_at_the_end_of_the_turn() -> None:
    raw, transport = _wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    transport.write(b"later")
    assert raw.writes[-1] == b"later"


async def test_closing_sends_what_is_held_first() -> None:
    raw, transport = _wrapped()
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    transport.close()
    assert raw.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and raw.closed
    await asyncio.sleep(0)
    assert len(raw.writes) == 1  # nothing written after the close


async def test_a_large_first_body_is_not_copied_but_stays_in_order() -> None:
    raw, transport = _wrapped()
    big = b"x" * (256 * 1024)
    transport.write(b"head")
    transport.write(big)
    assert raw.writes[0] == b"head" and raw.writes[1] is big


async def test_everything_else_is_the_transport_s() -> None:
    raw, transport = _wrapped()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    assert not transport.is_closing()
    raw.close()
    assert transport.is_closing()
