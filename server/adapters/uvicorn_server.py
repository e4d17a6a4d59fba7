"""uvicorn's `Server` with one deadline for the whole stop (python -m server runs it).

Library internals it relies on are listed in this package's table (server/adapters/__init__.py).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Generator
from types import FrameType
from typing import Protocol

import uvicorn

from shared.deadline import StopDeadline


class Stopping(Protocol):
    """What the server stops before uvicorn closes the connections (the relay)."""

    async def drain(self, deadline: float) -> None: ...

    def close_sessions(self) -> None: ...


class UvicornServer(uvicorn.Server):
    """uvicorn's server, with one deadline for the whole stop, and consuming stopped before
    client connections close.

    Usage: ``UvicornServer(config, stopping=relay, shutdown_timeout_s=4.0).run()``.

    The first SIGTERM/SIGINT fixes the deadline: SHUTDOWN_TIMEOUT_S from the signal, less what
    exiting takes after the last step. Every step shares it: the app's drain (in-process worker
    threads, then the ZeroMQ subscriber), closing the clients' sessions, then uvicorn's
    graceful shutdown of the connections with whatever is left. Draining comes first because
    uvicorn closes connections first and runs the lifespan shutdown last; in between, the
    subscriber would emit (and confirm, so SQS deletes) events to clients already gone.
    """

    def __init__(
        self, config: uvicorn.Config, *, stopping: Stopping, shutdown_timeout_s: float
    ) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._deadline = StopDeadline(shutdown_timeout_s)

    @property
    def serving(self) -> bool:
        """Whether start-up went through (uvicorn's `started`: sockets bound, lifespan up)."""
        return bool(self.started)

    def open_connections(self) -> int:
        """Connections open now, HTTP and WebSocket, in their handshake or not (uvicorn's
        `server_state.connections`)."""
        return len(self.server_state.connections)

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
        self._deadline.start()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        deadline = self._deadline.start()  # (no signal: uvicorn's --limit-* set should_exit)
        await self._stopping.drain(deadline)
        self._stopping.close_sessions()
        # uvicorn waits this long for open requests (an upload still arriving, a long poll
        # whose client missed the close) and connections, then cancels them. It only hands the
        # value to asyncio.wait_for, which takes fractions of a second.
        left = max(0.0, deadline - time.monotonic())
        self.config.timeout_graceful_shutdown = left  # type: ignore[assignment]
        await super().shutdown(sockets)
