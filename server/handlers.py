"""Socket.IO event handlers: connect (authenticate, resume), join/leave rooms (authorise,
resume), and the allow-listed client events relayed to other clients.

Resume protocol (README, "Replay on reconnect"): every event carries ``offset`` and
``epoch``. A client that reconnects sends the last ``{"epoch", "offset"}`` it saw:

- for events without a room, in the connect ``auth`` payload: ``{"since": {...}}``; the
  server replays what was missed, then sends ``relay:recovery``;
- for a room, in the join request: ``{"room": "shop", "since": {...}}``; the answer says
  ``recovered`` and how many events were ``replayed``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as Refused

from server.auth import Authenticator, AuthError, Identity
from server.replay import RecoveryFailed, ReplayBuffer
from server.subscriber import BROADCAST_ROOM
from shared import counters as c
from shared.counters import Counters
from shared.envelope import RESERVED_EVENTS, RESERVED_PREFIX
from shared.settings import Settings

logger = logging.getLogger(__name__)

MAX_ROOM_LENGTH = 200
RECOVERY_EVENT = "relay:recovery"


@dataclass(slots=True)
class Client:
    """What the server keeps per connection and namespace."""

    identity: Identity
    tokens: float
    refilled: float = field(default_factory=time.monotonic)

    def take(self, rate: float, burst: int) -> bool:
        # A token bucket: a dozen lines, so no library; one per connection, no locking
        # needed on one event loop.
        now = time.monotonic()
        self.tokens = min(burst, self.tokens + (now - self.refilled) * rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def register_handlers(
    sio: socketio.AsyncServer,
    *,
    settings: Settings,
    auth: Authenticator,
    replay: ReplayBuffer,
    counters: Counters,
) -> Callable[[], int]:
    """Attach the handlers for every namespace (the server accepts any, `namespaces='*'`).

    Returns a function that counts the connections, for the metrics."""
    clients: dict[tuple[str, str], Client] = {}
    allowed_events = frozenset(settings.client_events)

    async def resume(sid: str, namespace: str, room: str | None, since: Any) -> dict[str, Any]:
        # Called with replay.lock held: nothing new is emitted until the client is caught up.
        try:
            if not isinstance(since, dict):
                raise RecoveryFailed("'since' must be an object with 'epoch' and 'offset'")
            entries = replay.since((namespace, room), since.get("epoch"), since.get("offset"))
        except RecoveryFailed as exc:
            counters.inc(c.RECOVERY_FAILED)
            logger.info("Client %s could not resume %s %s: %s", sid, namespace, room, exc.reason)
            return {"recovered": False, "reason": exc.reason}
        for entry in entries:
            await sio.emit(entry.event, entry.payload, to=sid, namespace=namespace)
        counters.inc(c.REPLAYED, len(entries))
        return {"recovered": True, "replayed": len(entries)}

    async def connect(namespace: str, sid: str, environ: dict[str, Any], data: Any = None) -> None:
        try:
            identity = auth.verify(data)
        except AuthError as exc:
            counters.inc(c.CONNECT_REFUSED)
            logger.info("Refused client %s on %s: %s", sid, namespace, exc)
            raise Refused(str(exc)) from None
        clients[(namespace, sid)] = Client(identity, float(settings.client_event_burst))
        since = data.get("since") if isinstance(data, dict) else None
        async with replay.lock:
            if since is not None:
                result = await resume(sid, namespace, None, since)
                await sio.emit(
                    RECOVERY_EVENT, {"room": None, **result}, to=sid, namespace=namespace
                )
            await sio.enter_room(sid, BROADCAST_ROOM, namespace=namespace)

    async def disconnect(namespace: str, sid: str, reason: Any = None) -> None:
        clients.pop((namespace, sid), None)

    async def join(namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        room, since = _room_and_since(request)
        if error := _room_error(room):
            return {"ok": False, "error": error}
        client = clients.get((namespace, sid))
        if client is None or not client.identity.may_join(room):
            counters.inc(c.JOIN_REFUSED)
            return {"ok": False, "error": f"not allowed to join room {room!r}"}
        async with replay.lock:
            result: dict[str, Any] = {"ok": True, "room": room}
            if since is not None:
                result |= await resume(sid, namespace, room, since)
            await sio.enter_room(sid, room, namespace=namespace)
        return result

    async def leave(namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        room, _since = _room_and_since(request)
        if error := _room_error(room):
            return {"ok": False, "error": error}
        await sio.leave_room(sid, room, namespace=namespace)
        return {"ok": True, "room": room}

    async def client_event(event: str, namespace: str, sid: str, *args: Any) -> dict[str, Any]:
        """Any other event a client sends: relayed only if allow-listed, small and in rate."""
        client = clients.get((namespace, sid))
        data = args[0] if args else None
        error = _client_event_error(event, data, allowed_events, settings)
        if error is None and (
            client is None
            or not client.take(settings.client_event_rate, settings.client_event_burst)
        ):
            error = "rate limit exceeded (CLIENT_EVENT_RATE)"
        if error is not None:
            counters.inc(c.CLIENT_EVENT_REFUSED)
            logger.debug("Refused client event %r from %s: %s", event, sid, error)
            return {"ok": False, "error": error}
        rooms = [r for r in sio.rooms(sid, namespace=namespace) if r not in (sid, BROADCAST_ROOM)]
        targets = rooms or [BROADCAST_ROOM]
        await sio.emit(
            event, {"data": data, "from": sid}, to=targets, skip_sid=sid, namespace=namespace
        )
        counters.inc(c.CLIENT_EVENT_RELAYED)
        return {"ok": True, "relayed_to": rooms or None}

    for event, handler in (
        ("connect", connect),
        ("disconnect", disconnect),
        ("join", join),
        ("leave", leave),
        ("*", client_event),
    ):
        sio.on(event, handler=handler, namespace="*")
    return lambda: len(clients)


def _client_event_error(
    event: str, data: Any, allowed: frozenset[str], settings: Settings
) -> str | None:
    """Why a client event may not be relayed, or None. Never raises, whatever the input."""
    if event not in allowed or event in RESERVED_EVENTS or event.startswith(RESERVED_PREFIX):
        return f"event {event!r:.80} is not allowed (CLIENT_EVENTS)"
    try:
        size = len(json.dumps(data).encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        return "payload is not JSON that can be relayed"
    if size > settings.client_event_max_bytes:
        limit = settings.client_event_max_bytes
        return f"payload is {size} bytes, over CLIENT_EVENT_MAX_BYTES={limit}"
    return None


def _room_and_since(request: Any) -> tuple[Any, Any]:
    if isinstance(request, dict):
        return request.get("room"), request.get("since")
    return request, None


def _room_error(room: Any) -> str | None:
    if not isinstance(room, str) or not room:
        return "room must be a non-empty string"
    if len(room) > MAX_ROOM_LENGTH:
        return f"room name longer than {MAX_ROOM_LENGTH} characters"
    if room.startswith(RESERVED_PREFIX):
        return f"room names starting with {RESERVED_PREFIX!r} are reserved"
    return None
