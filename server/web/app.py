"""The ASGI application: Socket.IO at /socket.io/, the demo page at /, /healthz, /readyz,
/metrics, the demo endpoints, and the Admin UI at /admin-ui/ (ADMIN_UI).

`create_app(relay)` serves a :class:`~server.relay.Relay` (which owns every part); the
lifespan starts and closes it, so it starts and stops with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import Any

import socketio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from producer import publish
from server.adapters.refusals import Refusals
from server.relay import Relay
from server.sessions.auth import DEMO_TOKEN_TTL_S
from server.web.admin_assets import ADMIN_UI, AdminAssetError, verify_admin_ui
from server.web.api import ReadApi
from server.web.limits import ConnectRateLimit
from shared.envelope import DecodeError
from shared.settings import Settings

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


class DemoSender:
    """`POST /demo/send`: puts a test event on the queue, so the page can show the whole
    path (SQS, worker, ZeroMQ, server, browser). boto3 blocks, so it runs in a thread."""

    def __init__(self, settings: Settings, *, sqs: Any = None) -> None:
        self._settings = settings
        if sqs is not None:  # else made on first use: most servers never send a demo event
            self._sqs = sqs

    @cached_property
    def _sqs(self) -> Any:
        from shared.sqs import SERVER_APP, make_sqs_client  # boto3: only once a demo is sent

        return make_sqs_client(self._settings, app=SERVER_APP)

    async def send(self, request: Request) -> Response:
        try:
            form = await request.json()
            event, data, room = form.get("event") or "demo", form.get("data"), form.get("room")
        except (ValueError, AttributeError):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            message_id = await asyncio.to_thread(
                publish, self._sqs, self._settings.sqs_queue_url, event, data, room=room or None
            )
        except DecodeError as exc:  # what the worker would dead-letter (NaN in data, ...)
            return JSONResponse({"error": exc.reason}, status_code=400)
        return JSONResponse({"MessageId": message_id})


def create_app(relay: Relay) -> ConnectRateLimit:
    """The whole ASGI app: Socket.IO in front, Starlette for plain HTTP and the lifespan,
    which starts and closes `relay`."""
    settings, counters, handoff = relay.settings, relay.counters, relay.handoff

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        relay.start()  # a taken ZMQ_BIND fails start-up, and uvicorn exits with code 3
        try:
            yield
        finally:
            await relay.close()

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(_request: Request) -> Response:
        """Alive: the process answers. Also shows the counters, for people."""
        return JSONResponse(
            {
                "status": "ok",
                "subscriber": handoff.running,
                "workers_connected": handoff.workers_connected,
                "epoch": relay.history.epoch,
                "dedup_window_s": relay.emitter.dedup_window_s,
                "redis": relay.history.redis_healthy,  # null without Redis
                "control": relay.control.healthy,  # the control bus's Redis; null without
                "counters": {
                    f"{name}[{reason}]" if reason else name: value
                    for (name, reason), value in counters.snapshot().items()
                },
            }
        )

    async def readyz(_request: Request) -> Response:
        """Ready: the subscriber runs, at least one worker is connected over ZeroMQ, and the
        history can confirm batches (cluster mode: Redis answers)."""
        problems = []
        if not handoff.running:
            problems.append("the ZeroMQ subscriber is not running")
        if handoff.workers_connected < 1:
            problems.append(f"no worker is connected to {settings.zmq_bind}")
        if (problem := relay.history.problem) is not None:
            problems.append(problem)
        body = {
            "ready": not problems,
            "problems": problems,
            "workers_connected": handoff.workers_connected,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(relay.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def demo_token(_request: Request) -> Response:
        return JSONResponse({"token": relay.auth.demo_token(), "expires_in": DEMO_TOKEN_TTL_S})

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/api/streams", ReadApi(settings, history=relay.history).streams),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if settings.admin_ui:  # the Admin UI's pinned files (server/web/admin_assets.py), checked
        try:
            verify_admin_ui()
            routes.append(Mount("/admin-ui", StaticFiles(directory=ADMIN_UI, html=True)))
        except AdminAssetError as exc:
            logger.warning("The Admin UI is not served at /admin-ui/: %s", exc)
    if settings.demo_on:
        routes += [
            Route("/demo/token", demo_token),
            Route("/demo/send", DemoSender(settings).send, methods=["POST"]),
        ]
    web = Starlette(routes=routes, lifespan=lifespan)
    app = socketio.ASGIApp(relay.sio, other_asgi_app=web)
    # new Socket.IO sessions per client address (server/web/limits.py)
    return ConnectRateLimit(
        app,
        rate=settings.client_connect_rate,
        burst=settings.client_connect_burst,
        refusals=Refusals(counters),
    )
