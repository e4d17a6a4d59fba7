"""The backend read API: ``GET /api/streams`` tells a backend, while it renders a page, where a
stream stands (its epoch and offset), its latest state (state rooms) and its last events.

The page hands that position to the client helper as the stream's ``since``; the helper's
join then resumes from it, so that nothing emitted after the render is missed and nothing
before it is sent again (docs/state.md, "A gapless first render").

It answers backends, not clients: ``Authorization: Bearer <BACKEND_API_KEY>`` (a client's
token is not that key and is refused), at most BACKEND_API_RATE requests a second over all
callers, at most BACKEND_API_MAX_EVENTS events and RESUME_MAX_BYTES bytes an answer. Without
BACKEND_API_KEY it answers 404.

    curl -H "Authorization: Bearer $BACKEND_API_KEY" \\
        'http://127.0.0.1:5000/api/streams?room=orders:42&last=10'
    {"namespace": "/", "room": "orders:42", "epoch": "…", "offset": 17,
     "state": [...], "events": [...]}
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.history.base import History, HistoryUnavailable
from server.history.state import state_room
from server.sessions.connection import TokenBucket
from server.sessions.requests import room_error
from shared.envelope import user_error, user_stream
from shared.settings import Settings

logger = logging.getLogger(__name__)


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    # orjson: the events' payloads hold their data as pre-encoded fragments
    return Response(orjson.dumps(body), status, media_type="application/json", headers=headers)


class ReadApi:
    """``GET /api/streams?room=R|user=U[&namespace=/][&last=N]``.

    Usage::

        api = ReadApi(settings, history=history)
        Route("/api/streams", api.streams)
    """

    def __init__(self, settings: Settings, *, history: History) -> None:
        self._settings = settings
        self._history = history
        key = settings.backend_api_key
        self._key = key.get_secret_value().encode() if key is not None else None
        rate = settings.backend_api_rate
        self._bucket = TokenBucket(rate, max(1, int(rate)))

    async def streams(self, request: Request) -> Response:
        if self._key is None:
            return _json({"error": "the read API is off: set BACKEND_API_KEY"}, 404)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._key):
            return _json(
                {"error": "send Authorization: Bearer <BACKEND_API_KEY> (a client token is not)"},
                401,
                **{"WWW-Authenticate": "Bearer"},
            )
        query = request.query_params
        stream, error = self._stream(
            query.get("namespace", "/"), query.get("room"), query.get("user")
        )
        if error is not None:
            return _json({"error": error}, 400)
        limit = self._settings.backend_api_max_events
        try:
            last = int(query.get("last", "0"))
        except ValueError:
            last = -1
        if not 0 <= last <= limit:
            return _json({"error": f"last must be an integer from 0 to {limit}"}, 400)
        if not self._bucket.take():
            return _json(
                {"error": "rate limit exceeded (BACKEND_API_RATE)"}, 429, **{"Retry-After": "1"}
            )
        return await self._read(stream, last)

    def _stream(
        self, namespace: str, room: str | None, user: str | None
    ) -> tuple[tuple[str, str | None], str | None]:
        if not namespace.startswith("/"):
            return ("/", None), "namespace must start with '/'"
        if room is not None and user is not None:
            return ("/", None), "give room or user, not both"
        if user is not None:
            if (reason := user_error(user)) is not None:
                return ("/", None), reason
            return (namespace, user_stream(user)), None
        if room is not None and (reason := room_error(room)) is not None:
            return ("/", None), reason
        return (namespace, room), None

    async def _read(self, stream: tuple[str, str | None], last: int) -> Response:
        budget = self._settings.resume_max_bytes
        history = self._history
        try:
            # A state room's state first: its position is the answer's, and the events are
            # those at or below it (a newer one comes to the client with its resume).
            state = None
            if state_room(self._settings.state_rooms, stream[1]):
                state = await history.latest(stream, budget)
                if state.offset is None:
                    raise HistoryUnavailable(state.failure or "the history is unavailable")
                budget -= state.size
            until = state.offset if state is not None else None
            recent = await history.recent(stream, last, max(0, budget), until=until)
        except HistoryUnavailable as exc:
            logger.warning("Read API: %s", exc)
            return _json({"error": "the history is unavailable; try again"}, 503)
        offset = state.offset if state is not None else recent.offset
        assert offset is not None
        body: dict[str, Any] = {
            "namespace": stream[0],
            "room": stream[1],
            "epoch": recent.epoch,
            "offset": offset,
            "events": [_with_event(e, p) for e, p in recent.entries],
        }
        if state is not None:
            body["state"] = [_with_event(e, p) for e, p in state.entries]
        return _json(body)


def _with_event(event: str, payload: Any) -> dict[str, Any]:
    """An event as the API lists it: its name beside the payload clients get."""
    return {"event": event, "payload": payload}
