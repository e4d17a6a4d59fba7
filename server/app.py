"""The ASGI application: Socket.IO at /socket.io/, the page at /, /healthz.

`create_app(settings)` builds everything; the ZeroMQ subscriber task lives in the lifespan,
so it starts and stops with uvicorn.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server.auth import DEMO_TOKEN_TTL_S, Authenticator
from server.handlers import register_handlers
from server.replay import ReplayBuffer
from server.subscriber import Subscriber
from shared.counters import Counters
from shared.curve import check_exposure
from shared.settings import Settings

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


class RelayApp(socketio.ASGIApp):  # type: ignore[misc]
    """The ASGI app, with the parts the server process and tests reach for."""

    sio: socketio.AsyncServer
    subscriber: Subscriber
    counters: Counters


def create_app(settings: Settings) -> RelayApp:
    """The whole ASGI app: Socket.IO in front, Starlette for plain HTTP and the lifespan.

    Raises SettingsError for a security setting that cannot work (checked here, not in
    Settings, because only the server needs them)."""
    check_exposure(settings)
    auth = Authenticator.from_settings(settings)
    counters = Counters()
    sio = socketio.AsyncServer(
        async_mode="asgi",
        namespaces="*",
        # None is python-socketio's "same origin only"
        cors_allowed_origins=settings.cors_allowed_origins or None,
        logger=False,
        engineio_logger=False,
    )
    replay = ReplayBuffer(
        window_s=settings.replay_window_s,
        max_events=settings.replay_max_events,
        max_bytes=settings.replay_max_bytes,
    )
    register_handlers(sio, settings=settings, auth=auth, replay=replay, counters=counters)
    subscriber = Subscriber(sio=sio, settings=settings, replay=replay, counters=counters)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        subscriber.bind()  # a taken endpoint fails start-up, and uvicorn exits with code 3
        subscriber.start()
        logger.info("Replay epoch %s", replay.epoch)
        try:
            yield
        finally:
            await subscriber.close()

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(_request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "subscriber": subscriber.running,
                "epoch": replay.epoch,
                "counters": {
                    f"{name}[{reason}]" if reason else name: value
                    for (name, reason), value in counters.snapshot().items()
                },
            }
        )

    async def demo_token(_request: Request) -> Response:
        if not auth.demo:
            return JSONResponse({"error": "demo tokens are off (DEMO_TOKENS)"}, status_code=404)
        return JSONResponse({"token": auth.demo_token(), "expires_in": DEMO_TOKEN_TTL_S})

    web = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/demo/token", demo_token),
        ],
        lifespan=lifespan,
    )
    app = RelayApp(sio, other_asgi_app=web)
    app.sio, app.subscriber, app.counters = sio, subscriber, counters
    return app
