"""`python -m server`: uvicorn serving the Socket.IO ASGI app on HOST:PORT."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Generator
from types import FrameType

import uvicorn

from server.adapters.wsprotocol import websocket_protocol
from server.relay import Relay
from server.web.app import create_app
from server.web.assets import AssetError, ensure_client_bundle
from shared.settings import SettingsError
from shared.startup import start

logger = logging.getLogger("server")

#: Of SHUTDOWN_TIMEOUT_S, what is kept for after the last step of a stop: cancelling what is
#: left, the lifespan's end, the event loop's close (the interpreter's own teardown is
#: skipped, see main()).
EXIT_S = 0.5

DESCRIPTION = (
    "Serve the Socket.IO relay on HOST:PORT (honcho sets PORT) and receive messages from "
    "workers on ZMQ_BIND. Settings come from the environment and .env; see .env.example. "
    "SIGTERM/SIGINT stop it within SHUTDOWN_TIMEOUT_S."
)


class UvicornServer(uvicorn.Server):
    """uvicorn's server, with one deadline for the whole stop, and consuming stopped before
    client connections close.

    Usage: ``UvicornServer(config, relay=relay, shutdown_timeout_s=4.0).run()``.

    The first SIGTERM/SIGINT fixes the deadline: SHUTDOWN_TIMEOUT_S from the signal, less what
    exiting takes after the last step. Every step shares it: the app's drain (in-process worker
    threads, then the ZeroMQ subscriber), closing the clients' sessions, then uvicorn's
    graceful shutdown of the connections with whatever is left. Draining comes first because
    uvicorn closes connections first and runs the lifespan shutdown last; in between, the
    subscriber would emit (and confirm, so SQS deletes) events to clients already gone.
    """

    def __init__(self, config: uvicorn.Config, *, relay: Relay, shutdown_timeout_s: float) -> None:
        super().__init__(config)
        self._relay = relay
        self._shutdown_timeout_s = shutdown_timeout_s
        self._deadline: float | None = None  # a time.monotonic() instant, once stopping

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's own, except that the stop signal is not raised again once the graceful
        stop is done: the process then exits 0 (honcho: rc=0), not "killed by SIGTERM"."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # As uvicorn's own: note it and return (the main loop looks at should_exit every
        # 0.1 s); the budget counts from the signal, as honcho's 5 s do.
        if self._deadline is None:
            self._deadline = self._deadline_from_now()
        super().handle_exit(sig, frame)

    def _deadline_from_now(self) -> float:
        return time.monotonic() + self._shutdown_timeout_s - EXIT_S

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._deadline is None:  # should_exit without a signal (uvicorn's --limit-*)
            self._deadline = self._deadline_from_now()
        await self._relay.drain(self._deadline)
        self._relay.close_sessions()
        # uvicorn waits this long for open requests (an upload still arriving, a long poll
        # whose client missed the close) and connections, then cancels them. It only hands the
        # value to asyncio.wait_for, which takes fractions of a second.
        left = max(0.0, self._deadline - time.monotonic())
        self.config.timeout_graceful_shutdown = left  # type: ignore[assignment]
        await super().shutdown(sockets)


def raise_file_limit() -> int:
    """Every client is a file descriptor: the soft limit (often 1,024) raised to the hard
    one, which needs no privilege. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logger.info("Open files limit raised from %d to %d (one per client)", soft, hard)
    return hard


def tune_garbage_collector(young_threshold: int) -> int:
    """Keep the cyclic garbage collector's passes off what lives long: the start-up's objects
    and every client's (about 180 each). Returns how many objects were frozen.

    Python's young threshold (700 new objects) moves objects that live for one request into
    the old generation, and its full pass over every object runs each time the old generation
    grew by a quarter: a connect storm pays for pass after pass, each longer than the last
    and each holding the event loop (10,000 clients: 16 passes, 9.1 s of the server's CPU;
    README "Many clients"). Here the start-up's objects (modules, the app), which live as
    long as the process, are frozen out of every pass (`gc.freeze`), and the young generation
    is collected every `young_threshold` new objects. A full pass is considered after two
    middle ones, about every 220,000 new objects with the default (Python's: about 77,000),
    and still runs only past its quarter rule. Cycles are all still collected, old ones too:
    a departed client leaves about 100 objects in cycles, and a server whose clients come and
    go keeps as much memory as with Python's own thresholds (measured, README).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, gc.get_threshold()[1], 1)
    frozen = gc.get_freeze_count()
    logger.info(
        "Garbage collector: %d start-up objects frozen, thresholds %s (GC_YOUNG_THRESHOLD)",
        frozen,
        gc.get_threshold(),
    )
    return frozen


def main(argv: list[str] | None = None) -> int:
    settings = start("server", DESCRIPTION, argv)
    if settings is None:
        return 2
    raise_file_limit()
    try:
        ensure_client_bundle()
    except AssetError as exc:
        logger.warning("The demo page will not connect: %s (run: python -m server.web.assets)", exc)
    try:
        relay = Relay(settings)
    except SettingsError as exc:
        print(f"server: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(relay),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        ws=websocket_protocol(settings.client_write_timeout_s),  # server/adapters/wsprotocol.py
        # Off, as in Node's Socket.IO: a compressor per client costs ~40 KB of memory and CPU
        # per frame, and the fan-out's frames are made once for everyone
        # (server/adapters/fanout.py).
        ws_per_message_deflate=False,
        # Connections waiting to be accepted in a connect storm; the kernel caps it at
        # net.core.somaxconn (README, "Many clients").
        backlog=65535,
        # timeout_graceful_shutdown: set when the stop begins, to what its deadline leaves
    )
    server = UvicornServer(config, relay=relay, shutdown_timeout_s=settings.shutdown_timeout_s)
    tune_garbage_collector(settings.gc_young_threshold)
    server.run()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # exiting already: stay a clean exit
    # uvicorn returns normally even when start-up failed; say so with its exit code.
    code = 0 if server.started else 3
    # Everything is closed. What the interpreter would still do is free every module: 0.4 s,
    # and over a second on a busy machine, past the stop's deadline. Skip it, as the worker
    # does; the logs are flushed first.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
