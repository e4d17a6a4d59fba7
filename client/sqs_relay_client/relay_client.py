"""A listening client that resumes by itself: python-socketio's `AsyncClient` plus the
relay's resume protocol (the manual's "Replay on reconnect"), so that an app gets every event once,
in order per stream, across reconnects, and is told when a stream must be resynced.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import socketio

from sqs_relay_client.protocol import (
    DISCONNECTED_EVENT,
    EXPIRED_EVENT,
    OVERFLOW_EVENT,
    PRESENCE_EVENT,
    RECOVERY_EVENT,
    RESERVED_PREFIX,
)
from sqs_relay_client.streams import MAX_IDS, Recovery, Room, Streams

logger = logging.getLogger(__name__)

Token = str | Callable[[], str | Awaitable[str]] | None
OnRecovery = Callable[[Recovery], Any]
OnDisconnected = Callable[[str], Any]
OnPresence = Callable[[dict[str, Any]], Any]

#: A join (or a presence request) refused for the connection's rate (CLIENT_EVENT_RATE) is
#: tried again this often.
_JOIN_ATTEMPTS = 20
_JOIN_RETRY_S = 0.25


@dataclass(frozen=True, slots=True)
class Event:
    """One relayed event: ``name`` and the fields of the payload (the relay's manual, "What a client
    receives"); ``payload`` is the whole object as it came."""

    name: str
    data: Any
    room: Room
    id: str | None
    offset: int | None
    epoch: str | None
    payload: Any

    @classmethod
    def of(cls, name: str, payload: Any) -> Event:
        fields = payload if isinstance(payload, dict) else {}
        return cls(
            name,
            fields.get("data", payload),
            fields.get("room"),
            fields.get("id"),
            fields.get("offset"),
            fields.get("epoch"),
            payload,
        )


class PresenceError(Exception):
    """A presence request was refused, or the room has more members than the server lists
    (PRESENCE_MAX_MEMBERS): :attr:`answer` is the server's answer."""

    def __init__(self, message: str, answer: dict[str, Any]) -> None:
        super().__init__(message)
        self.answer = answer


class RelayClient:
    """Connects, joins `rooms`, and after every reconnect resumes the namespace's room-less
    stream, each joined room and each room the server subscribed it to (the user's stream
    ``relay:user:<sub>``, the rooms of the token's subscribe claim: see `subscribed`) from the
    last position it knew (also when it received nothing yet: every answer carries the
    position). Repeats are dropped; what could not be recovered is reported to `on_recovery`
    (default: logged) with the stream's room, so the app can resync that stream. A resume the
    server answers "try again" (cluster mode, its history unavailable a while) is no such
    report: it is asked again, backing off (``reconnection_delay`` doubling up to
    ``reconnection_delay_max``), until it is served; meanwhile that stream's events come on
    only while they follow on from its position.

    Usage::

        async with RelayClient("http://127.0.0.1:5000", token=token, rooms=["shop"]) as relay:
            async for event in relay:
                print(event.name, event.room, event.data)

    `token` is a string, or a function (sync or async) called before every connect, so an
    expiring token is replaced: the server disconnects a client whose token expired, and
    this client then connects again with a new one. Other keyword arguments go to
    `socketio.AsyncClient` (``reconnection_delay``, ...).

    When the app's backend disconnects the user (a ``relay:disconnect`` command: logout, ban),
    the server says why (``relay:disconnected``) and closes the connection: this client then
    does not reconnect; it calls `on_disconnected` with the reason (default: logged), keeps it
    in :attr:`disconnected`, and iteration ends. Connect again with a new client (and a new
    token: the relay refuses the user's older ones for a while).

    In a presence room (the server's PRESENCE_ROOMS), `on_presence` is called with each
    ``relay:presence`` notice, ``{"room", "joined": [{"user", "info"}], "left": [user]}``
    (``"more"``: how many were left out); notices are never iterated as events.
    :meth:`presence` asks who is there, one page; :meth:`members` goes through every page.
    """

    def __init__(
        self,
        url: str,
        *,
        token: Token = None,
        rooms: Iterable[str] = (),
        namespace: str = "/",
        on_recovery: OnRecovery | None = None,
        on_disconnected: OnDisconnected | None = None,
        on_presence: OnPresence | None = None,
        transports: list[str] | None = None,
        max_ids: int = MAX_IDS,
        call_timeout_s: float = 10.0,
        **client_options: Any,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.sio = socketio.AsyncClient(**({"reconnection": True} | client_options))
        # The reconnect after a server disconnect (an expired token) backs off as
        # python-socketio's own does, from its documented options (defaults 1 s and 5 s).
        self._retry_delay_s = float(client_options.get("reconnection_delay", 1.0))
        self._retry_delay_max_s = float(client_options.get("reconnection_delay_max", 5.0))
        self._namespace_connected = False
        self.streams = Streams(max_ids=max_ids)
        self.rooms: list[str] = list(dict.fromkeys(rooms))  # joined, or to join on connect
        self._token = token
        self._on_recovery = on_recovery or _log_recovery
        self._on_disconnected = on_disconnected or _log_disconnected
        self._on_presence = on_presence or _log_presence
        #: Why the backend disconnected this client's user, once it did (None: it did not).
        self.disconnected: str | None = None
        self._transports = transports
        self._call_timeout_s = call_timeout_s
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._resumed: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        # Resumes answered "try again" (the history could not be read): a room's join is
        # asked again, the connect's streams by connecting again, each backing off.
        self._rejoining: dict[str, asyncio.Task[None]] = {}
        self._resuming: asyncio.Task[None] | None = None
        self._resume_tries = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.sio.on("connect", self._on_connect, namespace=namespace)
        self.sio.on("disconnect", self._on_disconnect, namespace=namespace)
        self.sio.on("*", self._on_event, namespace=namespace)

    # --- life ----------------------------------------------------------------------------------
    async def connect(self) -> RelayClient:
        """Connect and join `rooms`; raises socketio's ConnectionError if refused (the reason,
        such as ``token expired``, is in its message)."""
        await self.sio.connect(
            self.url,
            auth=self._auth,
            namespaces=[self.namespace],
            transports=self._transports,
            wait_timeout=self._call_timeout_s,
        )
        if self._resumed is not None:
            await self._resumed
        return self

    async def close(self) -> None:
        """Disconnect for good; iteration ends once the events already received are taken."""
        self._closing = True
        for task in (
            self._reconnecting, self._resumed, self._resuming, *self._rejoining.values(),
            *self._tasks,
        ):  # fmt: skip
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        await self.sio.disconnect()
        self._events.put_nowait(None)

    async def __aenter__(self) -> RelayClient:
        return await self.connect()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __aiter__(self) -> RelayClient:
        return self

    async def __anext__(self) -> Event:
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # every later iteration ends too
            raise StopAsyncIteration
        return event

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected) and self._namespace_connected

    @property
    def subscribed(self) -> list[str]:
        """The rooms the server subscribed this client to without a join, as far as its
        answers told: the user's stream ``relay:user:<sub>`` first, then the rooms of the
        token's subscribe claim. They are resumed after every reconnect like joined rooms;
        their events come with that ``room``."""
        return self.streams.subscribed

    # --- rooms and client events -----------------------------------------------------------------
    async def join(self, room: str, since: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Join `room` now and after every reconnect. Returns the server's answer (a refused
        room is not kept), or None while disconnected (it is joined on the next connect).

        `since` is the position the page or view was rendered at (the backend's read API,
        ``GET /api/streams``): what came after it is replayed first, nothing before it; it is
        ignored once the room has a position of its own."""
        self.streams.seed(room, since)
        if room not in self.rooms:
            self.rooms.append(room)
        if not self.connected:
            return None
        answer = await self._join(room)
        if not answer.get("ok") and room in self.rooms:
            self.rooms.remove(room)  # refused: not joined again on reconnect, nor its position
            self.streams.forget(room)
        return answer

    async def leave(self, room: str) -> dict[str, Any] | None:
        """Leave `room` and forget its position: a later join starts from then."""
        if room in self.rooms:
            self.rooms.remove(room)
        self.streams.forget(room)
        if not self.connected:
            return None
        answer: dict[str, Any] = await self.sio.call(
            "leave", room, namespace=self.namespace, timeout=self._call_timeout_s
        )
        return answer

    async def presence(self, room: str, after: str | None = None) -> dict[str, Any]:
        """Who is in presence room `room`, one page from `after` (None: the first): the
        server's answer, ``{"ok": True, "room", "count", "members": [{"user", "connections",
        "info"}], "next"}`` (no ``members`` above the server's PRESENCE_MAX_MEMBERS; ``next``:
        the `after` of the next page, None on the last), or ``{"ok": False, "error"}`` for a
        refusal (a room without presence, one the token does not allow; ``"not connected"``
        while disconnected). Any client its token allows in the room may ask."""
        if not self.connected:
            return {"ok": False, "room": room, "error": "not connected"}
        answer = await self._retried("presence", lambda: {"room": room, "after": after})
        return answer if isinstance(answer, dict) else {"ok": False, "error": repr(answer)}

    async def members(self, room: str) -> list[dict[str, Any]]:
        """Every member of presence room `room`, sorted by user, page after page; raises
        :class:`PresenceError` when a page is refused or the room has more members than the
        server lists. It stops at the last page, and at the largest count the server gave (a
        ``next`` asked for twice, or an empty page, ends it too): never an endless loop."""
        members: list[dict[str, Any]] = []
        asked: set[str] = set()
        after: str | None = None
        count = 0
        while True:
            answer = await self.presence(room, after)
            if not answer.get("ok"):
                raise PresenceError(f"presence of room {room!r}: {answer.get('error')}", answer)
            page = answer.get("members")
            if not isinstance(page, list):
                raise PresenceError(
                    f"room {room!r} has {answer.get('count')} members: more than the server lists",
                    answer,
                )
            members.extend(page)
            if isinstance(answer.get("count"), int):
                count = max(count, answer["count"])
            after = answer.get("next")
            if after is None or after in asked or not page or len(members) >= count:
                return members
            asked.add(after)

    async def emit(self, event: str, data: Any = None) -> Any:
        """Send a client event (relayed only if the server's CLIENT_EVENTS allows it); returns
        the server's answer."""
        return await self.sio.call(
            event, data, namespace=self.namespace, timeout=self._call_timeout_s
        )

    # --- the resume protocol -------------------------------------------------------------------
    async def _auth(self) -> dict[str, Any]:
        """The connect auth, made again for every (re)connect: a fresh token, the room-less
        stream's position (``null`` before the first answer gives one) and those of the rooms
        the server subscribed this client to (``streams``)."""
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        auth: dict[str, Any] = {
            "since": self.streams.since(None),
            "streams": self.streams.connect_streams(),
        }
        if token is not None:
            auth["token"] = token
        return auth

    async def _on_connect(self) -> None:
        self._namespace_connected = True
        # Joining here would hold up python-socketio's connect wait: resume in a task.
        self._resumed = asyncio.get_running_loop().create_task(self._resume_rooms())

    async def _resume_rooms(self) -> None:
        for room in list(self.rooms):
            try:
                await self._join(room)
            except (TimeoutError, socketio.exceptions.SocketIOError) as exc:
                logger.info(
                    "Resuming room %r stopped (%s); the next connect tries again", room, exc
                )
                return

    async def _join(self, room: str) -> dict[str, Any]:
        answer = await self._join_once(room)
        rejoining = self._rejoining.get(room)
        if self.streams.retrying(room) and (rejoining is None or rejoining.done()):
            self._rejoining[room] = asyncio.get_running_loop().create_task(self._rejoin(room))
        return answer

    async def _rejoin(self, room: str) -> None:
        """Join `room` again, backing off, while its resume is answered "try again"."""
        delay = self._retry_delay_s
        while not self._closing and self.streams.retrying(room) and room in self.rooms:
            await asyncio.sleep(delay)
            if not self.connected:
                return  # the next connect resumes it
            try:
                await self._join_once(room)
            except (TimeoutError, socketio.exceptions.SocketIOError) as exc:
                logger.info("Resuming room %r again stopped (%s)", room, exc)
                return
            delay = min(delay * 2, self._retry_delay_max_s)

    async def _join_once(self, room: str) -> dict[str, Any]:
        answer = await self._retried(
            "join", lambda: {"room": room, "since": self.streams.since(room)}
        )
        if not isinstance(answer, dict) or not answer.get("ok"):
            logger.warning("Join of room %r refused: %s", room, answer)
            return answer if isinstance(answer, dict) else {"ok": False, "error": repr(answer)}
        self._report(self.streams.answered(room, answer))
        return answer

    async def _retried(self, event: str, request: Callable[[], dict[str, Any]]) -> Any:
        """`event` with `request()` (made again for each try), tried again while the server
        refuses it for the connection's rate (CLIENT_EVENT_RATE)."""
        answer: Any = None
        for _ in range(_JOIN_ATTEMPTS):
            answer = await self.sio.call(
                event, request(), namespace=self.namespace, timeout=self._call_timeout_s
            )
            error = answer.get("error", "") if isinstance(answer, dict) else ""
            if "rate limit" not in str(error):
                break
            await asyncio.sleep(_JOIN_RETRY_S)
        return answer

    def _on_event(self, event: str, *args: Any) -> None:
        # Synchronous on purpose: python-socketio runs each message's handler as a task, and
        # one with no await runs to its end in arrival order, so order per stream is kept.
        payload = args[0] if args else None
        if event == RECOVERY_EVENT:
            # one per server-subscribed room (its room), then the room-less stream's (None)
            self._report(self.streams.recovery(payload))
            if isinstance(payload, dict) and payload.get("room") is None:
                self._resume_again_if_asked()
        elif event == EXPIRED_EVENT:
            logger.info("Token expired; the server disconnects, and this reconnects: %s", payload)
        elif event == OVERFLOW_EVENT:
            logger.warning("The server cut this client as too slow; it reconnects: %s", payload)
        elif event == DISCONNECTED_EVENT:
            reason = payload.get("reason") if isinstance(payload, dict) else None
            self.disconnected = str(reason) if reason is not None else ""
            self._closing = True  # the server closes the connection next: no reconnect
            self._call(self._on_disconnected, self.disconnected)
        elif event == PRESENCE_EVENT:
            # who joined and who left a presence room: no offset, no id, not an event
            if isinstance(payload, dict):
                self._call(self._on_presence, payload)
        elif event.startswith(RESERVED_PREFIX):
            logger.debug("Ignored relay event %s", event)
        elif self.streams.accept(payload):
            room = payload.get("room") if isinstance(payload, dict) else None
            if isinstance(room, str) and room not in self.rooms:
                self.streams.subscribe(room)  # the server put it there: resumed at connect
            self._events.put_nowait(Event.of(event, payload))

    async def _on_disconnect(self, reason: Any = None) -> None:
        self._namespace_connected = False
        if self.disconnected is not None:
            # The backend disconnected the user: stop python-socketio's own reconnect too
            # (after a transport close), and end iteration.
            self._events.put_nowait(None)
            if reason != self.sio.reason.SERVER_DISCONNECT:
                self._call(lambda _reason: self.sio.disconnect(), reason)
            return
        if self._closing or reason != self.sio.reason.SERVER_DISCONNECT:
            return  # python-socketio reconnects by itself after a transport close
        # python-socketio never reconnects after the server disconnected it: for the relay
        # that is an expired token, so connect again (with a new one) once it is torn down.
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self._retry_delay_s
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self.connect()
            except (socketio.exceptions.ConnectionError, ValueError) as exc:
                logger.info("Reconnect failed (%s); trying again in %.1f s", exc, delay)
                delay = min(delay * 2, self._retry_delay_max_s)
            else:
                return

    def _resume_again_if_asked(self) -> None:
        """After the connect's last answer: if a stream's resume was answered "try again",
        connect again (that resumes every stream from its own position) after a back-off
        that grows while the answer stays the same."""
        streams = self.streams
        if not (streams.retrying(None) or any(map(streams.retrying, streams.subscribed))):
            self._resume_tries = 0
            return
        if self._closing or (self._resuming is not None and not self._resuming.done()):
            return
        delay = min(self._retry_delay_s * 2**self._resume_tries, self._retry_delay_max_s)
        self._resume_tries += 1
        self._resuming = asyncio.get_running_loop().create_task(self._resume_again(delay))

    async def _resume_again(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closing:
            return
        logger.info("The relay could not read its history; resuming again")
        await self.sio.disconnect()
        self._resuming = None  # this connect's answers may ask for the next try
        while not self._closing:
            try:
                await self.connect()
            except (socketio.exceptions.ConnectionError, ValueError) as exc:
                logger.info("Reconnect failed (%s); trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_delay_max_s)
            else:
                return

    def _report(self, recovery: Recovery | None) -> None:
        if recovery is not None:
            self._call(self._on_recovery, recovery)

    def _call(self, callback: Callable[[Any], Any], argument: Any) -> None:
        """Call an app's callback (sync or async: an async one runs as a task, held)."""
        result = callback(argument)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _log_disconnected(reason: str) -> None:
    logger.warning("The server disconnected this client for good (its user): %s", reason)


def _log_presence(notice: dict[str, Any]) -> None:
    logger.debug("Presence in room %r: %s", notice.get("room"), notice)


def _log_recovery(recovery: Recovery) -> None:
    stream = "room-less events" if recovery.room is None else f"room {recovery.room!r}"
    if recovery.recovered:
        logger.info("Recovered %s: %d missed event(s) replayed", stream, recovery.replayed)
    else:
        logger.warning("Could not recover %s, resync it: %s", stream, recovery.reason)
