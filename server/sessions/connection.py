"""What the server keeps for each connection and namespace, for the connection's life: who
it is (its token's identity), its request budget, its room operations' order, what it was
replayed, and its token's expiry timer; and :class:`Connections`, their index, which opens
and closes each.

A client owns its connections: :meth:`Connections.open` has the client's engine.io socket
(:class:`ClientOwner`, server/adapters/transport.py's `HeartbeatSocket`) hold each one, and
whatever ends the client (its transport gone, a ping unanswered, an overflow, a disconnect
while its connect handler still runs) closes them with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from server.sessions.auth import Identity


@runtime_checkable
class ClientOwner(Protocol):
    """What owns everything of one client for its life (its engine.io socket): what it holds
    is closed, once, when the client goes."""

    def hold(self, key: Hashable, close: Callable[[], None]) -> None:
        """Call `close` when the client goes (a key held again replaces the first)."""

    def release(self, key: Hashable) -> None:
        """`key` was closed otherwise: nothing to call for it when the client goes."""


@dataclass(slots=True)
class TokenBucket:
    """A token bucket: a dozen lines, so no library; one per connection, no locking needed
    on one event loop."""

    rate: float
    burst: int
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class Connection:
    """Everything the server keeps per connection and namespace, in one place."""

    identity: Identity
    bucket: TokenBucket
    #: Joins and leaves of this connection run one at a time, in the order they came.
    room_ops: asyncio.Lock = field(default_factory=asyncio.Lock)
    replayed_bytes: int = 0
    expiry: asyncio.TimerHandle | None = None
    #: The expiry's own task once the timer fired, held until it ends (the loop keeps only a
    #: weak reference to a task).
    expiring: asyncio.Task[None] | None = None
    #: The client that holds this connection, if one does (:meth:`Connections.open`).
    owner: ClientOwner | None = None

    def expire_with(self, expire: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `expire` when the token expires (its `exp` plus the leeway); nothing for a
        token that never does."""
        expires_at = self.identity.expires_at
        if expires_at is None:
            return
        delay = max(0.0, expires_at + self.identity.leeway_s - time.time())
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self.expiring = loop.create_task(expire(), name="token-expiry")

        self.expiry = loop.call_later(delay, fire)

    def close(self) -> None:
        """The connection is gone: its expiry will not run."""
        if self.expiry is not None:
            self.expiry.cancel()


class Connections:
    """Every open :class:`Connection` of the server, one per (namespace, sid): opened in one
    place (:meth:`open`, at the connect) and closed in one place (:meth:`close`: at the
    disconnect, when a connect is abandoned, or by its client as it goes), which cancels its
    token's expiry.

    Its length is the count of connections per namespace (`relay_connected_clients`).
    """

    def __init__(self, *, on_close: Callable[[str, str], None] | None = None) -> None:
        self._open: dict[tuple[str, str], Connection] = {}
        self._on_close = on_close  # (namespace, sid), once per connection closed

    def open(
        self,
        namespace: str,
        sid: str,
        connection: Connection,
        expire: Callable[[], Coroutine[Any, Any, None]],
        owner: ClientOwner | None = None,
    ) -> Connection:
        """Keep `connection` for (namespace, sid), run `expire` when its token expires, and
        have `owner` (the client) close it when the client goes."""
        self._open[(namespace, sid)] = connection
        connection.expire_with(expire)
        if owner is not None:
            connection.owner = owner
            owner.hold((namespace, sid), lambda: self.close(namespace, sid))
        return connection

    def get(self, namespace: str, sid: str) -> Connection | None:
        """The open connection of (namespace, sid), if any."""
        return self._open.get((namespace, sid))

    def close(self, namespace: str, sid: str) -> None:
        """(namespace, sid) is gone: its connection is forgotten and its expiry will not run
        (nothing if it is not open)."""
        connection = self._open.pop((namespace, sid), None)
        if connection is not None:
            connection.close()
            if connection.owner is not None:
                connection.owner.release((namespace, sid))
            if self._on_close is not None:
                self._on_close(namespace, sid)

    def __contains__(self, key: object) -> bool:
        return key in self._open

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """The (namespace, sid) of every open connection."""
        return iter(self._open)

    def __len__(self) -> int:
        return len(self._open)
