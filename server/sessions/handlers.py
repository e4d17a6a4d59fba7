"""Socket.IO event handlers: connect (authenticate, resume), join/leave rooms (authorise,
resume), and the allow-listed client events relayed to other clients.

Resume protocol (docs/protocol.md, "Replay on reconnect"): every event carries ``offset`` and
``epoch``, and every answer carries the stream's position, ``{"epoch", "offset"}`` of its last
event, taken as the client entered it (so a client that has received nothing yet still knows
where to resume from). A client that reconnects sends the last position it knew:

- for events without a room, in the connect ``auth`` payload: ``{"since": {...}}`` (``null``:
  none yet, just tell me); the server replays what was missed, then sends the connect answer
  ``relay:recovery`` with the position, and with ``recovered``/``replayed`` for a resume;
- for the streams the server subscribes the connection to (its user's own stream
  ``relay:user:<sub>``, then the rooms its token's subscribe claim lists), in the same payload:
  ``{"since": ..., "streams": {"relay:user:alice": {...}, "news": null}}``; before the
  room-less stream, each is resumed in that order and answered by its own ``relay:recovery``
  with its ``room`` (a stream not in ``streams``: the position alone). Without ``since``, or
  with ``since`` but no ``streams`` (a client that tracks the room-less stream only), the
  server only enters it into them;
- for a room, in the join request: ``{"room": "shop", "since": {...}}``; the answer has the
  position, and says ``recovered`` and how many events were ``replayed``.

What one client may cost everyone is bounded: every request (join, leave, client event) is
charged to the connection's token bucket; a connection's room operations run one at a time;
a resume replays at most ``RESUME_MAX_BYTES``, a connection at most
``RESUME_MAX_BYTES_PER_CONNECTION`` in all; and no lock that live emits need is ever held
while sending.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import socketio
from socketio.exceptions import ConnectionRefusedError as Refused

from server.adapters.lookups import client_socket, is_connected, transport_open
from server.conforms import conforms
from server.history.base import History
from server.history.reasons import too_big
from server.history.replay import RecoveryFailed
from server.history.state import state_room
from server.payload import BROADCAST_ROOM, target_room
from server.presence.tracker import Presence
from server.sessions.auth import Authenticator, AuthError
from server.sessions.connection import ClientOwner, Connection, Connections, TokenBucket
from server.sessions.requests import (
    client_event_error,
    connect_streams,
    room_and_since,
    room_error,
)
from shared import counters as c
from shared.counters import Counters
from shared.envelope import EXPIRED_EVENT, RECOVERY_EVENT, RESERVED_PREFIX, RESUME_RETRY
from shared.settings import Settings

logger = logging.getLogger(__name__)

_OWN_EVENTS = frozenset({"connect", "disconnect", "join", "leave", "presence"})


class SessionNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The handlers of every namespace (registered as ``*``; the server accepts any and the
    token says which a client may use).

    Usage::

        sio.register_namespace(SessionNamespace(settings=settings, auth=auth, history=history,
                                              counters=counters))
    """

    def __init__(
        self,
        *,
        settings: Settings,
        auth: Authenticator,
        history: History,
        counters: Counters,
        presence: Presence | None = None,
    ) -> None:
        super().__init__("*")
        self._settings = settings
        self._auth = auth
        self._history = history
        self._counters = counters
        self._allowed_events = frozenset(settings.client_events)
        self._presence = presence
        self.connections = Connections(on_close=presence.disconnected if presence else None)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Route to ``on_<event>`` for the relay's own events, everything else to
        :meth:`relay_client_event`. For the ``*`` namespace, args are (namespace, sid, ...)."""
        namespace, sid = args[0], args[1]
        if event in ("connect", "disconnect") and self._is_connected(sid, namespace):
            # A client's own EVENT packet named "connect"/"disconnect": python-socketio routes
            # it here like the real ones, which never arrive for a connected sid.
            return await self.relay_client_event(event, *args)
        if event in _OWN_EVENTS:
            return await getattr(self, f"on_{event}")(*args)
        return await self.relay_client_event(event, *args)

    # --- connect / disconnect ------------------------------------------------------------------
    async def on_connect(
        self, namespace: str, sid: str, environ: dict[str, Any], data: Any = None
    ) -> bool | None:
        try:
            identity = self._auth.verify(data, namespace=namespace)
        except AuthError as exc:
            self._refuse(sid, namespace, str(exc))
        # A backend's disconnect command refuses the user's older tokens for a while.
        if (revoked := await self._auth.revoked(identity)) is not None:
            self._refuse(sid, namespace, revoked)
        positions, error = connect_streams(data, self._settings.max_message_rooms)
        if error is not None:
            self._refuse(sid, namespace, error)
        settings = self._settings
        connection = self.connections.open(
            namespace,
            sid,
            Connection(
                identity, TokenBucket(settings.client_event_rate, settings.client_event_burst)
            ),
            expire=lambda: self._expire(namespace, sid),
            owner=self._client(sid, namespace),
        )
        if self._presence is not None:
            self._presence.connected(namespace, sid, identity)
        # The streams the server subscribes it to (its user's, its token's rooms), then, last,
        # the room-less one: a client that waits for the room-less answer has had them all.
        streams: tuple[str | None, ...] = (*identity.streams, None)

        def enter(room: str | None) -> Callable[[], Awaitable[None]]:
            async def entered() -> None:
                await self.enter_room(sid, target_room(room), namespace=namespace)
                if self._presence is not None:
                    self._presence.entered(namespace, sid, room)

            return entered

        tracking = isinstance(data, dict) and "since" in data
        # Per-stream answers only to a client that sends `streams` (it knows the room-less
        # answer is the last); a client that tracks only the room-less stream (an earlier
        # helper) takes every relay:recovery for that one, so it gets that one alone.
        per_stream = tracking and "streams" in data
        for room in streams:
            if not tracking or (room is not None and not per_stream):
                if state_room(self._settings.state_rooms, room):
                    # its latest events first, then it is entered: no relay:recovery, which
                    # such a client takes for the room-less stream's
                    await self._resume(connection, sid, namespace, room, None, enter(room))
                else:
                    await enter(room)()
                continue
            since = data["since"] if room is None else positions.get(room)
            result = await self._resume(connection, sid, namespace, room, since, enter(room))
            if not self._is_open(sid, namespace):
                # The transport closed while we replayed: python-socketio skips the disconnect
                # handler of a connection still connecting, so clean up here (a ghost
                # otherwise).
                self.connections.close(namespace, sid)
                return False
            await self.emit(RECOVERY_EVENT, {"room": room, **result}, to=sid, namespace=namespace)
        return None  # a client that does not track the streams gets no connect answer

    def _refuse(self, sid: str, namespace: str, reason: str) -> NoReturn:
        self._counters.inc(c.CONNECT_REFUSED)
        logger.info("Refused client %s on %s: %s", sid, namespace, reason)
        raise Refused(reason) from None

    async def on_disconnect(self, namespace: str, sid: str, reason: Any = None) -> None:
        self.connections.close(namespace, sid)

    async def _expire(self, namespace: str, sid: str) -> None:
        if self.connections.get(namespace, sid) is None:
            return
        logger.info("Token of client %s on %s expired; disconnecting it", sid, namespace)
        await self.emit(
            EXPIRED_EVENT,
            {"reason": "token expired: reconnect with a new token"},
            to=sid,
            namespace=namespace,
        )
        await self.disconnect(sid, namespace=namespace)

    # --- rooms ---------------------------------------------------------------------------------
    async def on_join(self, namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        room, since = room_and_since(request)
        connection = self.connections.get(namespace, sid)
        if error := self._request_error(connection, room):
            return {"ok": False, "error": error}
        assert connection is not None
        if not connection.identity.may_join(room):
            self._counters.inc(c.JOIN_REFUSED)
            return {"ok": False, "error": f"not allowed to join room {room!r}"}

        async def enter() -> None:
            await self.enter_room(sid, room, namespace=namespace)
            if self._presence is not None:
                self._presence.entered(namespace, sid, room)

        async with connection.room_ops:
            result: dict[str, Any] = {"ok": True, "room": room}
            result |= await self._resume(connection, sid, namespace, room, since, enter)
        if not self._is_open(sid, namespace):
            return {"ok": False, "error": "disconnected"}
        return result

    async def on_leave(self, namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        room, _since = room_and_since(request)
        connection = self.connections.get(namespace, sid)
        if error := self._request_error(connection, room, check_expiry=False):
            return {"ok": False, "error": error}
        assert connection is not None
        async with connection.room_ops:  # after any join still replaying
            await self.leave_room(sid, room, namespace=namespace)
            if self._presence is not None:
                self._presence.exited(namespace, sid, room)
        return {"ok": True, "room": room}

    async def on_presence(self, namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        """Who is in a presence room: ``{"room": "chat", "after": null}`` is answered with its
        member count and, below PRESENCE_MAX_MEMBERS, a page of members (``next``: the
        ``after`` of the next page). Any client its token allows in the room may ask."""
        room, _since = room_and_since(request)
        after = request.get("after") if isinstance(request, dict) else None
        connection = self.connections.get(namespace, sid)
        if error := self._request_error(connection, room):
            return {"ok": False, "error": error}
        assert connection is not None
        presence = self._presence
        if presence is None or not presence.tracks(room):
            return {"ok": False, "error": f"room {room!r} has no presence (PRESENCE_ROOMS)"}
        if not connection.identity.may_join(room):
            self._counters.inc(c.JOIN_REFUSED)
            return {"ok": False, "error": f"not allowed in room {room!r}"}
        if after is not None and not isinstance(after, str):
            return {"ok": False, "error": "'after' must be a user id (the last page's 'next')"}
        try:
            return await presence.roster(namespace, room, after=after)
        except presence.store.errors as exc:
            logger.warning("Presence request for %s failed: %s", room, exc)
            return {"ok": False, "error": "presence is unavailable; try again"}

    def _request_error(
        self, connection: Connection | None, room: Any, *, check_expiry: bool = True
    ) -> str | None:
        if connection is None:
            return "not connected"
        if not connection.bucket.take():
            self._counters.inc(c.JOIN_REFUSED)
            return "rate limit exceeded (CLIENT_EVENT_RATE)"
        if check_expiry and connection.identity.expired():
            return "token expired: reconnect with a new token"
        return room_error(room)

    # --- resume --------------------------------------------------------------------------------
    async def _resume(
        self,
        connection: Connection,
        sid: str,
        namespace: str,
        room: str | None,
        since: Any,
        enter: Callable[[], Any],
    ) -> dict[str, Any]:
        """Send what the client missed on (namespace, room) after `since` (None: nothing to
        resume), then `enter` the room; return the answer: the stream's position as the client
        entered it, and for a resume, whether it ``recovered`` and how many were ``replayed``.

        No lock is held while sending: events are in the history before they are emitted
        live, so after sending what it had, this looks again, and enters the room in the same
        step (no await between) as it finds nothing new. Live events then follow in order,
        each above the position the answer gives.
        """
        stream = (namespace, room)
        history = self._history
        replayed = 0
        budget = min(
            self._settings.resume_max_bytes,
            self._settings.resume_max_bytes_per_connection - connection.replayed_bytes,
        )
        # First what the history gives at once (cluster mode: what the shared history holds
        # that this server's feed reader already handled; a state room joined without a
        # position: its latest events), then what this server kept since.
        if since is None and state_room(self._settings.state_rooms, room):
            catch = await history.latest(stream, max(0, budget))
        else:
            catch = await history.catch_up(stream, since, max(0, budget))
        if catch.retry and isinstance(since, dict):
            return await self._try_again(sid, namespace, room, since, catch.failure, enter)
        failure, offset = catch.failure, catch.offset
        if catch.refused:
            self._counters.inc(c.RESUME_REFUSED)
        budget -= catch.size
        connection.replayed_bytes += catch.size
        for event, payload in catch.entries:
            await self.emit(event, payload, to=sid, namespace=namespace)
        replayed += len(catch.entries)
        while offset is not None:
            try:
                entries = history.after(stream, offset)
            except RecoveryFailed as exc:
                failure = failure or exc.reason
                break
            if not entries:
                break
            size = sum(entry.bytes for entry in entries)
            if size > budget:
                self._counters.inc(c.RESUME_REFUSED)
                failure = failure or too_big(size)
                break
            budget -= size
            connection.replayed_bytes += size
            # Payloads are taken now: an entry may be dropped from the buffer while we send.
            missed = [(entry.event, entry.payload) for entry in entries]
            offset = entries[-1].offset
            for event, payload in missed:
                await self.emit(event, payload, to=sid, namespace=namespace)
            replayed += len(missed)
            if not self._is_open(sid, namespace):
                break
        position = history.position(stream, offset)
        result: dict[str, Any] = {"epoch": history.epoch, "offset": position}
        if self._is_open(sid, namespace):
            await enter()  # no await since the last look at the buffer and the position
        if since is None:
            if state_room(self._settings.state_rooms, room):
                result["state"] = replayed  # its latest events, then the ones since
            return result
        self._counters.inc(c.REPLAYED, replayed)
        result |= {"recovered": failure is None, "replayed": replayed}
        if failure is not None:
            self._counters.inc(c.RECOVERY_FAILED)
            logger.info("Client %s could not resume %s %s: %s", sid, namespace, room, failure)
            result["reason"] = failure
        return result

    async def _try_again(
        self,
        sid: str,
        namespace: str,
        room: str | None,
        since: dict[str, Any],
        reason: str | None,
        enter: Callable[[], Any],
    ) -> dict[str, Any]:
        """The answer to a resume the history cannot serve now (cluster mode: Redis down, or
        this server's feed reader behind) although nothing is known to be lost: "try again"
        (``retry``), with the client's own position, so that it resumes again from there.

        The client is entered all the same, so that live events keep flowing (and a client
        that does not know ``retry`` resyncs and goes on, as after any failed resume); live
        events above a gap are the client's to hold back until its resume is served (the
        helpers take only the next offset of such a stream meanwhile: docs/protocol.md).
        """
        if self._is_open(sid, namespace):
            await enter()
        logger.info("Client %s will resume %s %s again: %s", sid, namespace, room, reason)
        return {
            "epoch": since.get("epoch"),
            "offset": since.get("offset"),
            "recovered": False,
            RESUME_RETRY: True,
            "replayed": 0,
            "reason": reason,
        }

    def _is_connected(self, sid: str, namespace: str) -> bool:
        return is_connected(self, sid, namespace)

    def _client(self, sid: str, namespace: str) -> ClientOwner | None:
        """The client's engine.io socket, which closes the connection when the client goes."""
        socket = client_socket(self, sid, namespace)
        return socket if conforms(socket, ClientOwner) else None

    def _is_open(self, sid: str, namespace: str) -> bool:
        """The client's transport is still there (python-socketio's manager keeps a sid that
        is still connecting even after its transport closed)."""
        return transport_open(self, sid, namespace)

    # --- client events -------------------------------------------------------------------------
    async def relay_client_event(
        self, event: str, namespace: str, sid: str, *args: Any
    ) -> dict[str, Any]:
        """Any other event a client sends: relayed only if allow-listed, JSON, small and in
        rate, to the sender's rooms, joined or subscribed by its token (everyone in the
        namespace if it is in none); never to a user's stream."""
        connection = self.connections.get(namespace, sid)
        data = args[0] if args else None
        error = client_event_error(event, data, self._allowed_events, self._settings)
        if error is None and (connection is None or not connection.bucket.take()):
            error = "rate limit exceeded (CLIENT_EVENT_RATE)"
        if error is not None:
            self._counters.inc(c.CLIENT_EVENT_REFUSED)
            logger.debug("Refused client event %r from %s: %s", event, sid, error)
            return {"ok": False, "error": error}
        # Rooms it is in (joined, or subscribed by its token); never a relay: stream (its
        # user's own, relay:all): a client event is not a message to the sender's user.
        rooms = [
            r
            for r in self.rooms(sid, namespace=namespace)
            if r != sid and not r.startswith(RESERVED_PREFIX)
        ]
        await self.emit(
            event,
            {"data": data, "from": sid},
            to=rooms or [BROADCAST_ROOM],
            skip_sid=sid,
            namespace=namespace,
        )
        self._counters.inc(c.CLIENT_EVENT_RELAYED)
        return {"ok": True, "relayed_to": rooms or None}
