"""The ASGI application: Socket.IO at /socket.io/, the demo page at /, /healthz, /readyz,
/metrics, and the demo endpoints.

`create_app(settings)` builds everything; the ZeroMQ subscriber task and the event-loop lag
probe live in the lifespan, so they start and stop with uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
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

from server.auth import DEMO_TOKEN_TTL_S, Authenticator
from server.handlers import RelayNamespace
from server.inprocess import InProcessWorkers
from server.metrics import ServerMetrics
from server.payload import ClientJSON
from server.replay import ReplayBuffer
from server.subscriber import Subscriber
from shared.counters import SERVER_NAMES, WORKER_NAMES, Counters
from shared.curve import check_exposure
from shared.envelope import DecodeError, Envelope
from shared.settings import Settings
from shared.sqs import make_sqs_client

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


class RelayApp(socketio.ASGIApp):  # type: ignore[misc]
    """The ASGI app, with the parts the server process and tests reach for.

    >>> await app.drain(deadline)   # stop consuming, by a time.monotonic() instant
    """

    sio: socketio.AsyncServer
    subscriber: Subscriber
    counters: Counters
    workers: InProcessWorkers | None

    #: Of the stop budget, what the worker threads leave the subscriber: it looks at its
    #: closing flag every 0.1 s, then finishes the batch in hand and logs its summary.
    SUBSCRIBER_CLOSE_S = 0.3
    _draining: asyncio.Task[None] | None = None
    _closing_sessions: asyncio.Task[None] | None = None

    async def drain(self, deadline: float) -> None:
        """Stop consuming by `deadline` (a `time.monotonic()` instant): in-process workers
        first (their last batches still get confirmed), then the subscriber. Idempotent: the
        first call's deadline holds for every later one (the server process drains before
        uvicorn closes client connections, the lifespan again after)."""
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(deadline), name="drain")
        await self._draining

    async def _drain(self, deadline: float) -> None:
        if self.workers is not None:
            await self.workers.stop(deadline - self.SUBSCRIBER_CLOSE_S)
        # Subscriber.close() would wait up to SHUTDOWN_TIMEOUT_S by itself; the stop has one
        # budget, so it gets what is left of it.
        try:
            await asyncio.wait_for(self.subscriber.close(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            logger.warning(
                "The ZeroMQ subscriber was still emitting at the stop deadline; that batch is "
                "not confirmed, so SQS redelivers it"
            )

    def close_sessions(self) -> None:
        """Start closing every Engine.IO session, after :meth:`drain`. Each client gets
        Engine.IO's close packet, which socket.io clients answer by reconnecting (here once
        the server is back, or elsewhere), and a long-polling client's open request returns
        with it instead of holding uvicorn's graceful shutdown until the stop's deadline.

        Not awaited: Engine.IO then waits for each close packet to be fetched, which a
        long-polling client that went away never does. uvicorn's graceful shutdown, next, is
        what waits, within the deadline."""
        sessions = len(self.sio.eio.sockets)
        if sessions and self._closing_sessions is None:  # disconnect() of none raises
            logger.info("Closing %d client session(s)", sessions)
            self._closing_sessions = asyncio.create_task(
                self.sio.eio.disconnect(), name="close-sessions"
            )


class DemoSender:
    """`POST /demo/send`: puts a test event on the queue, so the page can show the whole
    path (SQS, worker, ZeroMQ, server, browser). boto3 blocks, so it runs in a thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _sqs(self) -> Any:
        return make_sqs_client(self._settings)

    async def send(self, request: Request) -> Response:
        try:
            form = await request.json()
            envelope = Envelope(
                event=form.get("event") or "demo",
                data=form.get("data"),
                room=form.get("room") or None,
            )
        except (ValueError, AttributeError) as exc:
            reason = exc.reason if isinstance(exc, DecodeError) else "body must be a JSON object"
            return JSONResponse({"error": reason}, status_code=400)
        body = {"event": envelope.event, "data": envelope.data, "room": envelope.room}
        response = await asyncio.to_thread(
            self._sqs.send_message,
            QueueUrl=self._settings.sqs_queue_url,
            MessageBody=json.dumps(body),
        )
        return JSONResponse({"MessageId": response["MessageId"]})


def create_app(settings: Settings) -> RelayApp:
    """The whole ASGI app: Socket.IO in front, Starlette for plain HTTP and the lifespan.

    Raises SettingsError for a security setting that cannot work (checked here, not in
    Settings, because only the server needs them)."""
    check_exposure(settings)
    auth = Authenticator.from_settings(settings)
    counters = Counters()
    thread_mode = settings.consumer == "thread"
    # In thread mode the worker threads count into the server's counters: show theirs too.
    metrics = ServerMetrics(counters, SERVER_NAMES + WORKER_NAMES if thread_mode else SERVER_NAMES)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        namespaces="*",
        json=ClientJSON,  # strict, and each message's data encoded once (server/payload.py)
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
    handlers = RelayNamespace(settings=settings, auth=auth, replay=replay, counters=counters)
    sio.register_namespace(handlers)
    subscriber = Subscriber(
        sio=sio, settings=settings, replay=replay, counters=counters, metrics=metrics
    )
    workers = InProcessWorkers(settings, counters=counters) if thread_mode else None
    metrics.track(metrics.connected_clients, lambda: len(handlers.connections))
    metrics.track(metrics.workers_connected, lambda: subscriber.workers_connected)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        subscriber.bind()  # a taken endpoint fails start-up, and uvicorn exits with code 3
        subscriber.start()
        if workers is not None:
            workers.start()
        probe = asyncio.create_task(metrics.probe_loop_lag(), name="loop-lag-probe")
        logger.info("Replay epoch %s", replay.epoch)
        try:
            yield
        finally:
            # The server process drained already, by its stop deadline, before uvicorn closed
            # the connections; under another ASGI server this is the stop's start.
            await app.drain(time.monotonic() + settings.shutdown_timeout_s)
            probe.cancel()

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def healthz(_request: Request) -> Response:
        """Alive: the process answers. Also shows the counters, for people."""
        return JSONResponse(
            {
                "status": "ok",
                "subscriber": subscriber.running,
                "workers_connected": subscriber.workers_connected,
                "epoch": replay.epoch,
                "counters": {
                    f"{name}[{reason}]" if reason else name: value
                    for (name, reason), value in counters.snapshot().items()
                },
            }
        )

    async def readyz(_request: Request) -> Response:
        """Ready: the subscriber runs and at least one worker is connected over ZeroMQ."""
        problems = []
        if not subscriber.running:
            problems.append("the ZeroMQ subscriber is not running")
        if subscriber.workers_connected < 1:
            problems.append(f"no worker is connected to {settings.zmq_bind}")
        body = {
            "ready": not problems,
            "problems": problems,
            "workers_connected": subscriber.workers_connected,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def demo_token(_request: Request) -> Response:
        return JSONResponse({"token": auth.demo_token(), "expires_in": DEMO_TOKEN_TTL_S})

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if settings.demo_on:
        routes += [
            Route("/demo/token", demo_token),
            Route("/demo/send", DemoSender(settings).send, methods=["POST"]),
        ]
    web = Starlette(routes=routes, lifespan=lifespan)
    app = RelayApp(sio, other_asgi_app=web)
    app.sio, app.subscriber, app.counters, app.workers = sio, subscriber, counters, workers
    return app
