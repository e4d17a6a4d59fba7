"""uvicorn's HTTP protocol for the relay: a deadline for a request's headers, and a cap on open
connections.

uvicorn takes an HTTP protocol class of one's own through its `http` setting. This one is its
httptools protocol (what its "auto" picks, uvicorn[standard]) with:

- **a header timeout**: a connection that has not sent a whole request's headers within
  `CLIENT_HEADER_TIMEOUT_S` of opening (or of its next request beginning) is closed. uvicorn
  alone keeps a connection that sends nothing, or its headers a byte at a time, for ever:
  its keep-alive timeout starts only after a first response. Hundreds of such connections
  hold as many file descriptors, and their slowness costs the server nothing else;
- **a connection cap**: past `CLIENT_MAX_CONNECTIONS` open connections (HTTP and WebSocket
  together), a new one is closed as it opens, before a byte of it is read, so that the server
  never runs out of file descriptors (uvicorn's own `limit_concurrency` answers 503 only once
  a request's headers came, and says nothing).

Each refusal is counted and logged once per address per interval
(server/adapters/refusals.py). And once a connection is upgraded to a WebSocket, this
protocol lets go of its HTTP parser, so that the two are freed at once instead of waiting, in
a cycle, for a full collection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.adapters.refusals import Refusals, address_of
from shared import counters as c


class _HttpProtocol(HttpToolsProtocol):
    header_timeout_s: float = 30.0
    max_connections: int = 0  # 0: no cap
    refusals: Refusals | None = None
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections and len(self.connections) > self.max_connections:
            self._refuse(
                c.CONNECTIONS_OVER_LIMIT,
                f"closed a new connection: {self.max_connections} were open "
                "(CLIENT_MAX_CONNECTIONS)",
            )
            return
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        # The connection is the WebSocket protocol's now; this one is called no more, and
        # nothing else holds it but its parser, which calls back into it: a cycle of 14
        # objects (about 3 KB) per WebSocket client that only a full pass frees, once the
        # handshake outlived a young one (server/collector.py). uvicorn drops the parser in
        # connection_lost, which an upgraded connection never calls: drop it here, and
        # reference counting frees both now.
        self.parser = None  # type: ignore[assignment]

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self._refuse(
                c.HEADER_TIMEOUTS,
                "closed a connection that sent no complete request headers within "
                f"{self.header_timeout_s:g} s (CLIENT_HEADER_TIMEOUT_S)",
            )

    def _refuse(self, counter: str, what: str) -> None:
        if self.refusals is not None:
            self.refusals.refuse(counter, address_of(self.client), what)
        self.transport.close()


def http_protocol(
    *, header_timeout_s: float, max_connections: int, refusals: Refusals
) -> type[Any]:
    """The relay's HTTP protocol class, for uvicorn's `http` setting."""
    return type(
        "RelayHttpProtocol",
        (_HttpProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_connections": max_connections,
            "refusals": refusals,
        },
    )
