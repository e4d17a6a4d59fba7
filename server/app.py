"""The ASGI application: Socket.IO at /socket.io/, the page at /, /healthz.

`create_app(settings)` builds everything; the ZeroMQ subscriber task lives in the lifespan,
so it starts and stops with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server.subscriber import Subscriber
from shared.settings import Settings

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_ROOM_LENGTH = 200


def create_sio(settings: Settings) -> socketio.AsyncServer:
    """The Socket.IO server and its handlers. Any namespace may be used (`namespaces='*'`)."""
    sio = socketio.AsyncServer(
        async_mode="asgi", namespaces="*", logger=False, engineio_logger=False
    )

    async def connect(namespace: str, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        logger.debug("Client %s connected to %s", sid, namespace)

    async def join(namespace: str, sid: str, room: Any = None) -> dict[str, Any]:
        if error := _room_error(room):
            return {"ok": False, "error": error}
        await sio.enter_room(sid, room, namespace=namespace)
        return {"ok": True, "room": room}

    async def leave(namespace: str, sid: str, room: Any = None) -> dict[str, Any]:
        if error := _room_error(room):
            return {"ok": False, "error": error}
        await sio.leave_room(sid, room, namespace=namespace)
        return {"ok": True, "room": room}

    for event, handler in (("connect", connect), ("join", join), ("leave", leave)):
        sio.on(event, handler=handler, namespace="*")
    return sio


def _room_error(room: Any) -> str | None:
    if not isinstance(room, str) or not room:
        return "room must be a non-empty string"
    if len(room) > MAX_ROOM_LENGTH:
        return f"room name longer than {MAX_ROOM_LENGTH} characters"
    return None


def create_app(settings: Settings) -> socketio.ASGIApp:
    """The whole ASGI app: Socket.IO in front, Starlette for plain HTTP and the lifespan."""
    sio = create_sio(settings)
    subscriber = Subscriber(sio=sio, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        subscriber.bind()  # a taken endpoint fails start-up, and uvicorn exits with code 3
        task = asyncio.create_task(subscriber.run(), name="zmq-subscriber")
        try:
            yield
        finally:
            await subscriber.stop()
            try:
                await asyncio.wait_for(task, settings.shutdown_timeout_s)
            except TimeoutError:
                logger.warning(
                    "ZeroMQ subscriber did not stop in %.1f s", settings.shutdown_timeout_s
                )
            subscriber.close()

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(_request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "subscriber": subscriber.running, "emitted": subscriber.emitted}
        )

    web = Starlette(
        routes=[Route("/", index), Route("/healthz", healthz)],
        lifespan=lifespan,
    )
    app = socketio.ASGIApp(sio, other_asgi_app=web)
    app.state = {"sio": sio, "subscriber": subscriber}  # for tests and later endpoints
    return app
