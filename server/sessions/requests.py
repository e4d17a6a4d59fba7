"""What a client may ask for, checked before anything is done: a room name, a join or leave
request's shape, a client event's name and payload, the stream positions of a connect. Each
function never raises, whatever the input, and says why in words the client gets back."""

from __future__ import annotations

import json
from typing import Any

from shared.envelope import MAX_ROOM_LENGTH, RESERVED_EVENTS, RESERVED_PREFIX
from shared.settings import Settings

__all__ = [
    "MAX_ROOM_LENGTH", "client_event_error", "connect_streams", "room_and_since", "room_error",
]  # fmt: skip


def client_event_error(
    event: str, data: Any, allowed: frozenset[str], settings: Settings
) -> str | None:
    """Why a client event may not be relayed, or None. Never raises, whatever the input."""
    if event not in allowed or event in RESERVED_EVENTS or event.startswith(RESERVED_PREFIX):
        return f"event {event!r:.80} is not allowed (CLIENT_EVENTS)"
    try:
        size = len(json.dumps(data, allow_nan=False).encode("utf-8"))
    except ValueError as exc:
        if "Out of range float" in str(exc):
            return "payload has NaN or Infinity, which is not JSON (browsers refuse it)"
        return "payload is not JSON that can be relayed"
    except (TypeError, RecursionError):
        return "payload is not JSON that can be relayed"
    if size > settings.client_event_max_bytes:
        limit = settings.client_event_max_bytes
        return f"payload is {size} bytes, over CLIENT_EVENT_MAX_BYTES={limit}"
    return None


def room_and_since(request: Any) -> tuple[Any, Any]:
    if isinstance(request, dict):
        return request.get("room"), request.get("since")
    return request, None


def room_error(room: Any) -> str | None:
    if not isinstance(room, str) or not room:
        return "room must be a non-empty string"
    if len(room) > MAX_ROOM_LENGTH:
        return f"room name longer than {MAX_ROOM_LENGTH} characters"
    if room.startswith(RESERVED_PREFIX):
        return f"room names starting with {RESERVED_PREFIX!r} are reserved"
    return None


def connect_streams(auth: Any, max_rooms: int) -> tuple[dict[str, Any], str | None]:
    """The positions a connect's ``auth`` gives per stream (``"streams": {room: position}``;
    absent or null: none), and why they are refused, or None: they must be an object of at
    most 1 + `max_rooms` (MAX_MESSAGE_ROOMS) entries, the user's stream and the token's rooms.
    Never raises, whatever the input."""
    streams = auth.get("streams") if isinstance(auth, dict) else None
    if streams is None:
        return {}, None
    if not isinstance(streams, dict):
        return {}, "'streams' must be an object of {room: position}"
    if len(streams) > 1 + max_rooms:
        return {}, (
            f"'streams' has {len(streams)} entries, over 1 + MAX_MESSAGE_ROOMS={1 + max_rooms}"
        )
    return streams, None
