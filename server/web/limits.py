"""A limit on new Socket.IO sessions per client address, as an ASGI middleware in front of the
whole app (docs/security.md, "Hostile connections").

Each engine.io handshake (a request to /socket.io/ without a `sid`) makes a session the
server keeps until its client leaves or its ping times out; a flood of them from one address
would fill the server with sessions nobody uses. Past `CLIENT_CONNECT_RATE` per second (and a
burst of `CLIENT_CONNECT_BURST`) from one address, a handshake is refused before engine.io
sees it: HTTP 429 with Retry-After for long-polling, 403 for a WebSocket (an ASGI close
before accept). Requests of sessions that exist, and every other path, pass untouched.
The address is the ASGI scope's client, which uvicorn takes from X-Forwarded-For when the
proxy is trusted (its FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from server.adapters.refusals import Refusals, address_of
from shared import counters as c

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Addresses whose buckets are kept; past it the oldest are dropped (they start full again).
MAX_ADDRESSES = 100_000


class ConnectRateLimit:
    """A token bucket per client address for new Socket.IO sessions.

    Usage::

        app = ConnectRateLimit(app, rate=200, burst=2000, refusals=Refusals(counters))
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        refusals: Refusals,
        path: str = "/socket.io/",
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.app, self.rate, self.burst = app, rate, burst
        self._refusals, self._path, self._clock = refusals, path, clock
        self._max_addresses = max_addresses
        #: address -> [tokens, when they were counted]
        self._buckets: dict[str, list[float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.rate > 0
            and scope["type"] in ("http", "websocket")
            and scope.get("path", "").startswith(self._path)
            and b"sid=" not in scope.get("query_string", b"")
            and not self._take(address := address_of(scope.get("client")))
        ):
            self._refusals.refuse(
                c.CONNECTS_RATE_LIMITED,
                address,
                f"refused a Socket.IO handshake past {self.rate:g} a second (burst "
                f"{self.burst}) from one address (CLIENT_CONNECT_RATE, CLIENT_CONNECT_BURST)",
            )
            await self._refuse(scope, send)
            return
        await self.app(scope, receive, send)

    def _take(self, address: str) -> bool:
        """One token from `address`'s bucket, if it has one."""
        now = self._clock()
        bucket = self._buckets.pop(address, None)  # re-inserted last: the oldest stay first
        if bucket is None:
            bucket = [float(self.burst), now]
            while len(self._buckets) >= self._max_addresses:
                del self._buckets[next(iter(self._buckets))]
        tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        taken = tokens >= 1.0
        self._buckets[address] = [tokens - 1.0 if taken else tokens, now]
        return taken

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        retry_after = str(max(1, round(1 / self.rate)))
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"retry-after", retry_after.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Too many connects from this address"})
