"""The backend's ``relay:disconnect`` command: every connection of its users, on every server
and every namespace, is told why (``relay:disconnected``) and closed; the users' older tokens
are refused for a while (server/control/revocations.py).

The emitter hands each such SQS message to :meth:`Disconnector.command` instead of the
history; that records the revocation and publishes the command on the control bus, whose
``disconnect`` handler, :meth:`Disconnector.handle`, runs on every server.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import socketio

from server.adapters.lookups import room_members
from server.control.bus import ControlBus
from server.control.revocations import Revocations
from shared import counters as c
from shared.counters import Counters
from shared.envelope import DISCONNECTED_EVENT, user_error, user_stream
from shared.wire import Delivery

logger = logging.getLogger(__name__)

#: The control bus's kind for the command.
KIND = "disconnect"
#: What a client is told when the command gave no reason.
DEFAULT_REASON = "disconnected by the application"


class Disconnector:
    """Carries out disconnect commands.

    Usage::

        disconnector = Disconnector(sio=sio, bus=bus, revocations=revocations,
                                    counters=counters)   # registers its handler on the bus
        await disconnector.command(delivery)   # ControlUnavailable: not confirmed
    """

    def __init__(
        self,
        *,
        sio: socketio.AsyncServer,
        bus: ControlBus,
        revocations: Revocations,
        counters: Counters,
    ) -> None:
        self._sio = sio
        self._bus = bus
        self._revocations = revocations
        self._counters = counters
        bus.on(KIND, self.handle)

    async def command(self, delivery: Delivery) -> None:
        """Revoke the users' older tokens, then publish the command to every server. Its time
        is the message's SQS SentTimestamp (the same for a redelivery), else now."""
        envelope = delivery.envelope
        at = delivery.sent_ms / 1000 if delivery.sent_ms is not None else time.time()
        users = list(envelope.users)
        await self._revocations.revoke(users, at)
        body = {"id": delivery.message_id, "users": users, "reason": envelope.reason, "at": at}
        await self._bus.publish(KIND, body)

    async def handle(self, body: dict[str, Any]) -> None:
        """This server's part: close every connection of the users here."""
        users = [u for u in body.get("users") or () if user_error(u) is None]
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason:
            reason = DEFAULT_REASON
        closed = 0
        for user in users:
            for namespace, sid in room_members(self._sio, user_stream(user)):
                # The notice, then the close, in that order on the client's queue.
                await self._sio.emit(
                    DISCONNECTED_EVENT, {"reason": reason}, to=sid, namespace=namespace
                )
                await self._sio.disconnect(sid, namespace=namespace)
                closed += 1
        self._counters.inc(c.DISCONNECT_COMMANDS)
        if closed:
            self._counters.inc(c.USERS_DISCONNECTED, closed)
        logger.info(
            "Disconnect command %s: %d user(s), %d connection(s) closed here: %s",
            body.get("id"),
            len(users),
            closed,
            reason,
        )
