"""Real python-socketio clients for integration tests."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import socketio

from tests.tokens import token


class RecordingClient:
    """An `AsyncClient` that records every event it receives, in order."""

    def __init__(self, *, reconnection: bool = False) -> None:
        self.sio = socketio.AsyncClient(
            reconnection=reconnection,
            reconnection_delay=0.2,
            reconnection_delay_max=1,
            # the libraries' own warnings (why a transport gave up) reach the test's output
            logger=logging.getLogger("tests.socketio_client"),
            engineio_logger=logging.getLogger("tests.engineio_client"),
        )
        self.events: list[tuple[str, Any]] = []
        self.disconnects: list[Any] = []  # python-socketio's reason for each disconnect
        self.received_at: list[float] = []  # time.time() as each event arrived
        self._changed = asyncio.Event()

        async def record(event: str, namespace: str, payload: Any = None) -> None:
            self.events.append((event, payload))
            self.received_at.append(time.time())
            self._changed.set()

        # every event of every namespace: the handler gets (event, namespace, payload)
        self.sio.on("*", handler=record, namespace="*")

        async def disconnected(namespace: str, reason: Any = None) -> None:
            self.disconnects.append(reason)
            self._changed.set()

        self.sio.on("disconnect", handler=disconnected, namespace="*")

    async def connect(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None = None,
        rooms: list[str] | None = None,
        **kwargs: Any,
    ) -> RecordingClient:
        """Connect with a valid token for `rooms` (default: any), plus whatever `auth` adds."""
        await self.sio.connect(
            url, auth={"token": token(rooms)} | (auth or {}), wait_timeout=10, **kwargs
        )
        return self

    async def wait_for(self, count: int, timeout_s: float = 30) -> list[tuple[str, Any]]:
        """Wait until at least `count` events arrived; fail with what did arrive."""

        async def enough() -> None:
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(enough(), timeout_s)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} events within {timeout_s} s, got {len(self.events)} "
                f"(disconnects: {self.disconnects!r}, transport {self.sio.transport()!r}): "
                f"{self.events[:5]!r}…"
            ) from None
        return self.events

    async def call(self, event: str, data: Any = None) -> Any:
        """Emit with an acknowledgement. Events the server emitted to this client before it
        answered arrive before the answer, so this is also a barrier."""
        return await self.sio.call(event, data, timeout=10)

    async def close(self) -> None:
        await self.sio.disconnect()

    def ids(self) -> list[str]:
        """MessageIds of the relayed events received (not the relay's own events)."""
        return [p["id"] for e, p in self.events if not e.startswith("relay:")]

    def of(self, event: str) -> list[Any]:
        return [payload for e, payload in self.events if e == event]
