"""The Socket.IO Admin UI on the relay's server: python-socketio's `instrument()`, read-only,
on a namespace of its own that only the admin's credentials open (docs/operations.md).

`instrument()` is python-socketio's public API; what it patches (the manager's `emit`,
`basic_enter_room` and `basic_leave_room`, the server's `_trigger_event`, engine.io's `_ok`
and, class-wide, the engine.io socket's POST and websocket handlers) it patches on whatever
server it is given, ours included: :class:`~server.adapters.fanout.FanoutManager`'s methods
are wrapped like the stock manager's. What it cannot see of ours, and the few names of its
own this module touches, are below and in the table (server/adapters/__init__.py).

What it cannot see: our websocket transport (server/adapters/transport.py's
`HeartbeatSocket`) has its own `_websocket_handler`, and the fan-out writes frames straight to
the connection (server/adapters/fanout.py): the packets and bytes of websocket clients are
not in the UI's figures (polling clients' are); our heartbeat runs on timers, so development
mode's refresh of each socket at every ping does not happen (the UI learns of sockets as they
connect, join, leave and go).
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as SocketIORefused

logger = logging.getLogger(__name__)


class AdminUI:
    """The Admin UI's side of the server: the instrumentation and its credentials check.

    Usage::

        admin = AdminUI.instrument(sio, namespace="/admin", username="ops",
                                   password="...16+ characters", mode="production")
        admin.close()   # stops its statistics task, at the relay's stop
    """

    def __init__(self, sio: socketio.AsyncServer, instrumented: Any, namespace: str) -> None:
        self._sio = sio
        self._instrumented = instrumented
        self.namespace = namespace

    @classmethod
    def instrument(
        cls,
        sio: socketio.AsyncServer,
        *,
        namespace: str,
        username: str,
        password: str,
        mode: str,
        server_id: str | None = None,
    ) -> AdminUI:
        """Instrument `sio` for the Admin UI on `namespace`, which opens only to an auth
        payload of exactly `{"username": username, "password": password}` (a client's token
        is refused: "authentication failed")."""
        expected = (username.encode(), password.encode())

        def check(auth: Any) -> bool:
            if not isinstance(auth, dict):
                return False
            given = (str(auth.get("username", "")).encode(), str(auth.get("password", "")).encode())
            # both compared, in constant time: the reply says nothing of which was wrong
            same_user = hmac.compare_digest(given[0], expected[0])
            same_password = hmac.compare_digest(given[1], expected[1])
            return same_user and same_password

        # The relay's SessionNamespace serves "*": every namespace without a handler of its
        # own. An empty namespace of ours takes the admin namespace's events that instrument()
        # registers no handler for ("disconnect", ...), which would otherwise reach it.
        sio.register_namespace(socketio.AsyncNamespace(namespace))
        # The UI's dashboard lists the namespaces with handlers of their own (sio.handlers),
        # which the relay's "*" is not: an empty entry lists the clients' "/" too. An empty
        # entry routes as no entry does (to the namespace handler).
        sio.handlers.setdefault("/", {})
        instrumented = sio.instrument(
            auth=check,
            namespace=namespace,
            mode=mode,
            read_only=True,  # joins, emits, disconnects from the UI would skip the relay's checks
            server_id=server_id,
        )
        admin = cls(sio, instrumented, namespace)
        if mode == "development":
            admin._forget_refused_connects()
        logger.info("Socket.IO Admin UI on namespace %s (%s mode, read-only)", namespace, mode)
        return admin

    def _forget_refused_connects(self) -> None:
        # Development mode tells the UI of every socket at its connect, before the connect
        # handler runs, and keeps its time until its disconnect, which a refused connect never
        # has: refused clients would stay listed (and their times kept) for ever. Undone here.
        sio, trigger = self._sio, self._sio._trigger_event  # instrument()'s wrapper

        async def trigger_event(event: str, namespace: str, *args: Any) -> Any:
            refused = False
            try:
                result = await trigger(event, namespace, *args)
                refused = event == "connect" and result is False
                return result
            except (SocketIORefused, ConnectionRefusedError):
                refused = event == "connect"
                raise
            finally:
                if refused:
                    sid = args[0]
                    sio.manager._timestamps.pop(sid, None)
                    await sio.emit(
                        "socket_disconnected",
                        (namespace, sid, "connection refused", datetime.now(UTC).isoformat()),
                        namespace=self.namespace,
                    )

        sio._trigger_event = trigger_event

    def close(self) -> None:
        """Stop the statistics task (python-socketio's own `shutdown()` waits for its next
        tick, up to its interval, of the stop's deadline)."""
        task = self._instrumented.stats_task
        if task is not None:
            task.cancel()
