"""Socket.IO event handlers: connect (with resume), join/leave rooms (with resume).

Resume protocol (README, "Replay on reconnect"): every event carries ``offset`` and
``epoch``. A client that reconnects sends the last ``{"epoch", "offset"}`` it saw:

- for events without a room, in the connect ``auth`` payload: ``{"since": {...}}``; the
  server replays what was missed, then sends ``relay:recovery``;
- for a room, in the join request: ``{"room": "shop", "since": {...}}``; the answer says
  ``recovered`` and how many events were ``replayed``.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio

from server.replay import RecoveryFailed, ReplayBuffer
from server.subscriber import BROADCAST_ROOM
from shared import counters as c
from shared.counters import Counters
from shared.envelope import RESERVED_PREFIX

logger = logging.getLogger(__name__)

MAX_ROOM_LENGTH = 200
RECOVERY_EVENT = "relay:recovery"


def register_handlers(
    sio: socketio.AsyncServer, *, replay: ReplayBuffer, counters: Counters
) -> None:
    """Attach the handlers for every namespace (the server accepts any, `namespaces='*'`)."""

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

    async def connect(namespace: str, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        since = auth.get("since") if isinstance(auth, dict) else None
        async with replay.lock:
            if since is not None:
                result = await resume(sid, namespace, None, since)
                await sio.emit(
                    RECOVERY_EVENT, {"room": None, **result}, to=sid, namespace=namespace
                )
            await sio.enter_room(sid, BROADCAST_ROOM, namespace=namespace)

    async def join(namespace: str, sid: str, request: Any = None) -> dict[str, Any]:
        room, since = _room_and_since(request)
        if error := _room_error(room):
            return {"ok": False, "error": error}
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

    for event, handler in (("connect", connect), ("join", join), ("leave", leave)):
        sio.on(event, handler=handler, namespace="*")


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
