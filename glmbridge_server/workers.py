"""Serving: one process, or ``workers`` processes on one port under a small supervisor.

One process serves by default. With ``workers = N`` (``--workers N``) the command's process
binds the port, then becomes a supervisor: it starts N worker processes (spawned, so each
is a fresh interpreter with nothing inherited but the settings and its listening socket),
restarts one that dies after it started serving, stops them all on SIGINT or SIGTERM (each
shuts down as a single server does: open answers end with an error, the usage rows are
written) and exits 0. A worker that dies before it serves (a broken
configuration fails the same way every time) stops the whole server with exit status 1.
A worker whose supervisor disappears (SIGKILL) stops by itself within a second.

Why a socket per worker and our own supervisor:

* **One listening socket per worker, all bound to the port with** ``SO_REUSEPORT``
  (:func:`glmbridge_server.cli._bind_workers`; Linux): the kernel spreads new connections
  over the workers. One socket shared by every worker (uvicorn's way) was measured to hand
  a burst of connections to a single worker: an asyncio event loop accepts every connection
  waiting on its socket at once, so the first worker to wake took all 16 of a client pool's
  connections, and with keep-alive they stayed there. The supervisor keeps every socket
  open, so connections for a worker being replaced wait in its queue. Where
  ``SO_REUSEPORT`` does not spread connections (macOS, BSD), the workers share one socket.
* **Our supervisor, not uvicorn's** ``Multiprocess``: uvicorn's builds its own
  ``uvicorn.Server`` in each worker, so glmbridge's shutdown hook (open answers end at once,
  :func:`~glmbridge_server.edge.app.begin_shutdown`) and its log configuration would not
  run there, and it serves one shared socket; the loop below is short and owns exactly what
  glmbridge needs.

Each worker builds its app with :func:`~glmbridge_server.edge.app.create_app` from the same
:class:`Settings` (keys included, passed through the spawn pipe, not the environment) and
records which worker it is (:class:`~glmbridge_server.edge.state.Worker`). What the workers
share, and what stays per process, is in docs/configuration.md ("Several worker processes").
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glmbridge_server.logs import configure_logging, secrets_of
from glmbridge_server.settings import Settings, redact_url

__all__ = ["refusal", "run_server", "settle_heap", "supervise"]

logger = logging.getLogger("glmbridge.server")

_POLL = 0.2  # seconds between two looks at the workers
_STOP_TIMEOUT = 15.0  # a worker's graceful shutdown (5 s) and its usage rows' flush, with room
_ORPHAN_CHECK = 1.0


def refusal(settings: Settings) -> str | None:
    """The configuration error of ``workers`` > 1 without shared state, else ``None``.

    Upstream slots, the queue and key rests live in each process unless Redis shares them:
    N workers would send up to N times a key's limit to Z.ai (a ``1302`` for each extra
    request). The simulator (``--mock``) has no such limits to break.
    """
    if settings.workers <= 1 or settings.redis_url or settings.mock:
        return None
    if settings.workers_local_state:
        return None
    return (
        f"workers = {settings.workers} needs redis_url: without it each worker keeps its own "
        "upstream slots and key rests, and together they would exceed a key's limit at Z.ai; "
        "set redis_url (docs/configuration.md), or workers_local_state = true to accept "
        "per-worker limits"
    )


def settle_heap() -> None:
    """Move everything alive after start-up out of the cyclic collector's reach.

    A large request allocates enough objects to trigger full collections, and each one
    walks every tracked object of the process with the interpreter held: with the imported
    modules frozen, those pauses stay proportional to the request (issue 13, item 3).
    """
    gc.collect()
    gc.freeze()


# -- one server process -------------------------------------------------------------------


class _Stopped(Exception):
    """SIGTERM arrived (after uvicorn's own shutdown, or before it started)."""


def _stopped(signum: int, frame: Any) -> None:
    raise _Stopped


def _server_class() -> type[Any]:
    import uvicorn

    from glmbridge_server.edge.app import begin_shutdown

    class Server(uvicorn.Server):
        """uvicorn's server, telling the app when it starts to stop (open answers end), and
        its supervisor when it serves."""

        on_started: Callable[[], None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and self.on_started is not None:
                self.on_started()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            begin_shutdown(self.config.app)  # a no-op for an app that is not glmbridge's
            await super().shutdown(sockets)

    return Server


def run_server(
    settings: Settings,
    sock: socket.socket,
    *,
    worker: Any = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Build the app and serve it on ``sock`` until SIGINT or SIGTERM (a clean return).

    ``worker``: the :class:`~glmbridge_server.edge.state.Worker` this process is, when it is
    one of several; ``on_started``: called once uvicorn accepts connections.
    """
    import uvicorn

    from glmbridge_server.edge.app import create_app
    from glmbridge_server.edge.inbound import uvicorn_options

    # uvicorn handles SIGINT/SIGTERM itself (a graceful shutdown), then re-raises the signal
    # to the handler it found: Ctrl-C's KeyboardInterrupt, and our _Stopped for SIGTERM, are
    # that normal end, so the exit status is 0 either way (a signal while the app is still
    # being built, too: nothing has started that would need stopping).
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with contextlib.suppress(KeyboardInterrupt, _Stopped):
            app = create_app(settings)
            if worker is not None:
                app.state.worker = worker
            config = uvicorn.Config(
                app,
                **uvicorn_options(settings),
                log_config=None,
                access_log=False,  # glmbridge logs one richer line per request itself
                server_header=False,
                # Forwarded headers are not trusted: glmbridge is not meant to sit behind a
                # proxy that rewrites client addresses, and the middleware costs time on
                # every request.
                proxy_headers=False,
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
            settle_heap()
            server = _server_class()(config)
            server.on_started = on_started
            server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- several: the worker side --------------------------------------------------------------


def _watch_supervisor(server_pid: int) -> None:
    """Stop this worker (as SIGTERM does) when its supervisor is gone (it was killed)."""
    while os.getppid() == server_pid:
        time.sleep(_ORPHAN_CHECK)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    settings: Settings, sock: socket.socket, index: int, server_pid: int, ready: Any
) -> None:
    """A worker process's entry point (spawned by :func:`supervise`)."""
    from glmbridge_server.edge.state import Worker

    configure_logging(settings.log_level, settings.log_format, secrets_of(settings), process=True)
    threading.Thread(target=_watch_supervisor, args=(server_pid,), daemon=True).start()
    worker = Worker(index=index, count=settings.workers, server_pid=server_pid)
    run_server(settings, sock, worker=worker, on_started=ready.set)


# -- several: the supervisor --------------------------------------------------------------


@dataclass
class _Child:
    index: int
    process: Any  # multiprocessing's SpawnProcess
    ready: Any  # a multiprocessing Event, set once the worker serves

    @classmethod
    def start(cls, ctx: Any, settings: Settings, sock: socket.socket, index: int) -> _Child:
        ready = ctx.Event()
        process = ctx.Process(
            target=_worker_main,
            args=(settings, sock, index, os.getpid(), ready),
            name=f"glmbridge-worker-{index}",
        )
        process.start()
        return cls(index, process, ready)


def supervise(settings: Settings, sockets: list[socket.socket]) -> int:
    """Run ``settings.workers`` worker processes until SIGINT or SIGTERM: worker ``i`` serves
    ``sockets[i]`` (one socket for all when only one is given).

    Returns 0 after a clean stop, 1 when a worker could not start serving.
    """
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    children: list[_Child] = []
    try:
        children = [
            _Child.start(ctx, settings, sockets[i % len(sockets)], i)
            for i in range(settings.workers)
        ]
        _describe(settings, children)
        return _keep_alive(ctx, settings, sockets, children, stop)
    finally:
        _stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe(settings: Settings, children: list[_Child]) -> None:
    pids = ", ".join(str(c.process.pid) for c in children)
    if settings.redis_url:
        shared = f"slots, queue and key rests shared through {redact_url(settings.redis_url)}"
    elif settings.mock:
        shared = "each with its own simulator and slots"
    else:
        shared = "each with its own slots and key rests (workers_local_state)"
    print(f"{len(children)} worker processes (pids {pids}), {shared}", file=sys.stderr,
          flush=True)  # fmt: skip
    # What stays in one worker's memory although a client may come back to another one
    kept = [what for what, on in (
        ("Responses conversations (responses_store)", settings.responses_store > 0),
        ("video tasks", bool(settings.media_api_keys) or settings.effective_plan == "payg"),
    ) if on]  # fmt: skip
    if kept:
        print(f"note: {' and '.join(kept)} are kept by the worker that made them: a follow-up "
              "on another connection may reach another worker and not find them",
              file=sys.stderr, flush=True)  # fmt: skip


def _keep_alive(
    ctx: Any, settings: Settings, sockets: list[socket.socket], children: list[_Child], stop: Any
) -> int:
    """Replace a worker that exits while serving; give up on one that never served."""
    while not stop.wait(_POLL):
        for i, child in enumerate(children):
            if child.process.is_alive() or stop.is_set():
                continue
            code = child.process.exitcode
            if not child.ready.is_set():
                logger.error("worker %d (pid %s) exited during start-up (exit code %s); "
                             "stopping the server", i, child.process.pid, code)  # fmt: skip
                return 1
            logger.warning("worker %d (pid %s) exited (exit code %s); starting another",
                           child.index, child.process.pid, code)  # fmt: skip
            children[i] = _Child.start(ctx, settings, sockets[i % len(sockets)], child.index)
    return 0


def _stop_all(children: list[_Child]) -> None:
    """SIGTERM every worker (a graceful stop each), then SIGKILL what is left."""
    for child in children:
        if child.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    for child in children:
        child.process.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.is_alive():
            logger.warning("worker %d (pid %s) did not stop in time; killed", child.index,
                           child.process.pid)  # fmt: skip
            child.process.kill()
            child.process.join(5)
