"""The control bus: a message published by one server is handled by every server, once.

Commands from the backend (``relay:disconnect``) and, later, other cluster-wide notices travel
on it; what goes to clients never does (that is the replay history's job). Each message has a
*kind*; every server registers a handler per kind before it starts.

:class:`LocalControlBus` is the bus of a server without Redis: publishing calls this process's
handlers. Several servers without Redis each receive every batch from the workers, so each
one publishes every command to itself. Cluster mode's is
:class:`~server.control.redis_bus.RedisControlBus`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

#: Handles one message of its kind: the body as published (a JSON object).
Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ControlUnavailable(Exception):
    """The message could not be published (Redis did not answer); the reason says why."""


class ControlBus(Protocol):
    """Every server's handler of a kind runs once for each message published with it.

    Usage::

        bus.on("disconnect", handler)          # before start
        bus.start()                            # in the running loop
        await bus.publish("disconnect", {"users": ["alice"]})  # ControlUnavailable: not sent
        await bus.close()
    """

    #: Whether Redis answered the last call; None without Redis (like the history's).
    healthy: bool | None

    def on(self, kind: str, handler: Handler) -> None: ...

    def start(self) -> None: ...

    async def publish(self, kind: str, body: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class Handlers:
    """The handlers registered per kind, and running them: a handler that raises is logged,
    and the others still run (one failed command must not stop the bus)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def add(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def run(self, kind: str, body: dict[str, Any]) -> None:
        handlers = self._handlers.get(kind)
        if not handlers:
            logger.debug("No handler for control message of kind %r", kind)
            return
        for handler in handlers:
            try:
                await handler(body)
            except Exception:
                logger.exception("Control handler for %r failed", kind)


class LocalControlBus:
    """The control bus of a server without Redis: this process's handlers, called at once.

    Usage::

        bus = LocalControlBus()
        bus.on("disconnect", handler)
        bus.start()
        await bus.publish("disconnect", body)   # returns once the handlers ran
    """

    healthy: bool | None = None

    def __init__(self) -> None:
        self._handlers = Handlers()

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.add(kind, handler)

    def start(self) -> None:
        pass

    async def publish(self, kind: str, body: dict[str, Any]) -> None:
        await self._handlers.run(kind, body)

    async def close(self) -> None:
        pass
