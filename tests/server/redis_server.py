"""A throwaway redis-server on loopback for tests and the attack campaign; it can be paused
(SIGSTOP: connections stay open and nothing answers) and resumed."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType

from tests.support.servers import free_port

__all__ = ["REDIS_SERVER", "RedisServer"]

# redis-server is a test requirement (.ci/run installs the Debian package).
REDIS_SERVER = shutil.which("redis-server") or "redis-server"


class RedisServer:
    """``with RedisServer() as redis: redis.url`` — started, answering, then terminated."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        self._proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self._proc.kill()
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        """Stop the server process (it answers nothing until :meth:`resume`)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._proc is not None
        self.resume()
        self._proc.terminate()
        self._proc.wait(10)
