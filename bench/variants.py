"""`python -m bench.variants MODE`: the other designs the benchmark compares, bench-only.

- ``thread-direct``: the in-process recipe done as well as it can be: one thread with
  blocking boto3 that emits through ``asyncio.run_coroutine_threadsafe`` onto the server's
  loop, waits for it, then deletes.
- ``naive``: the recipe from ARCHITECTURE.md as written, with the one fix it needs to start
  (the coroutine object, not the function, goes to ``asyncio.run``): a thread running its own
  event loop, blocking boto3 inside a coroutine, ``await sio.emit(...)`` from that foreign
  loop, and no delete. Whatever goes wrong is logged and counted, not fixed.
- ``aiobotocore``: what an asyncio user would pick: an async consumer in the server's loop.
- ``redis-server`` / ``redis-worker``: python-socketio's documented way for external
  emitters: a worker process emits through ``socketio.RedisManager(write_only=True)`` to a
  server using ``AsyncRedisManager``.
- ``minimal`` / ``minimal-worker``: the smallest correct relay this project's design could be
  replaced by, the floor every other mode is compared with: a stock ``AsyncServer`` with an
  asyncio ZeroMQ ROUTER that emits each message to everyone and acks each batch; worker
  processes in one stop-and-wait boto3 loop each (receive, hand off, wait for the ack,
  delete; unacked messages made visible again), and de-duplication by MessageId. No replay,
  rooms, metrics or auth, nothing else.

Every server variant serves the same page-less ASGI app: Socket.IO, ``ping`` (answered),
``/healthz``, and ``/metrics`` with the same event-loop lag probe as the real server. All
read the queue from SQS_QUEUE_URL / AWS_ENDPOINT_URL_SQS like the real processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import socketio
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.metrics import loop_lag_histogram, probe_loop_lag
from shared.envelope import DecodeError, parse_body
from shared.logs import configure_logging
from shared.settings import Settings, load_settings
from shared.sqs import make_sqs_client

logger = logging.getLogger("bench.variants")
SERVER_MODES = ("thread-direct", "naive", "aiobotocore", "redis-server", "minimal")
WORKER_MODES = ("redis-worker", "minimal-worker")
#: The minimal relay's worker waits this long for a batch's ack before returning the batch.
MINIMAL_ACK_TIMEOUT_S = 5.0
#: MessageIds the minimal relay's server remembers for de-duplication.
MINIMAL_SEEN_IDS = 100_000


def payload(message: dict[str, Any], data: Any, received_ms: int) -> dict[str, Any]:
    return {"id": message["MessageId"], "data": data, "room": None, "received_ms": received_ms}


def parse(message: dict[str, Any], settings: Settings) -> Any:
    return parse_body(message["Body"], default_event=settings.default_event)


def receive_args(settings: Settings) -> dict[str, Any]:
    return {
        "QueueUrl": settings.sqs_queue_url,
        "MaxNumberOfMessages": settings.sqs_batch_size,
        "WaitTimeSeconds": settings.sqs_wait_s,
        "MessageSystemAttributeNames": ["SentTimestamp"],
    }


def delete_all(sqs: Any, settings: Settings, messages: list[dict[str, Any]]) -> None:
    if messages:
        sqs.delete_message_batch(
            QueueUrl=settings.sqs_queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )


class Stats:
    def __init__(self) -> None:
        self.emitted = 0
        self.errors: dict[str, int] = {}
        self.workers: set[bytes] = set()  # minimal: the ZeroMQ identities that pinged

    def error(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}: {exc}"[:200]
        if key not in self.errors:
            logger.error("%s", key)
        self.errors[key] = self.errors.get(key, 0) + 1


def thread_direct(
    sio: socketio.AsyncServer,
    settings: Settings,
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
    stats: Stats,
) -> None:
    sqs = make_sqs_client(settings)
    while not stop.is_set():
        try:
            messages = sqs.receive_message(**receive_args(settings)).get("Messages", [])
            received_ms = int(time.time() * 1000)
            for m in messages:
                envelope = parse(m, settings)
                future = asyncio.run_coroutine_threadsafe(
                    sio.emit(envelope.event, payload(m, envelope.data, received_ms)), loop
                )
                future.result(timeout=10)
                stats.emitted += 1
            delete_all(sqs, settings, messages)
        except Exception as exc:
            stats.error(exc)
            stop.wait(0.5)


async def naive_consume(
    sio: socketio.AsyncServer, settings: Settings, stop: threading.Event, stats: Stats
) -> None:
    # As the recipe wrote it: blocking boto3 in a coroutine, emit from this (foreign) loop,
    # and never a delete.
    sqs = make_sqs_client(settings)
    while not stop.is_set():
        try:
            messages = sqs.receive_message(**receive_args(settings)).get("Messages", [])
            received_ms = int(time.time() * 1000)
            for m in messages:
                envelope = parse(m, settings)
                await sio.emit(envelope.event, payload(m, envelope.data, received_ms))
                stats.emitted += 1
        except Exception as exc:
            stats.error(exc)
            await asyncio.sleep(0.5)


async def aiobotocore_consume(sio: socketio.AsyncServer, settings: Settings, stats: Stats) -> None:
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "sqs",
        region_name=settings.region,
        endpoint_url=settings.sqs_endpoint_url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ) as sqs:
        while True:
            try:
                response = await sqs.receive_message(**receive_args(settings))
                messages = response.get("Messages", [])
                received_ms = int(time.time() * 1000)
                for m in messages:
                    envelope = parse(m, settings)
                    await sio.emit(envelope.event, payload(m, envelope.data, received_ms))
                    stats.emitted += 1
                if messages:
                    await sqs.delete_message_batch(
                        QueueUrl=settings.sqs_queue_url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                            for n, m in enumerate(messages)
                        ],
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stats.error(exc)
                await asyncio.sleep(0.5)


async def minimal_router(sio: socketio.AsyncServer, settings: Settings, stats: Stats) -> None:
    """The minimal relay's server side: ROUTER, emit each new message to everyone, ack."""
    import zmq
    import zmq.asyncio

    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(settings.zmq_bind)
    seen: OrderedDict[str, None] = OrderedDict()
    try:
        while True:
            identity, frame = await router.recv_multipart()
            request = json.loads(frame)
            if request.get("ping"):
                stats.workers.add(identity)
                await router.send_multipart([identity, b'{"pong": true}'])
                continue
            for m in request["messages"]:
                if m["id"] in seen:
                    continue
                seen[m["id"]] = None
                if len(seen) > MINIMAL_SEEN_IDS:
                    seen.popitem(last=False)
                await sio.emit(m["event"], {k: m[k] for k in ("id", "data", "received_ms")})
                stats.emitted += 1
            ack = {"ids": [m["id"] for m in request["messages"]]}
            await router.send_multipart([identity, json.dumps(ack).encode()])
    finally:
        router.close(linger=0)
        context.term()


def make_app(mode: str, settings: Settings, redis_url: str | None) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url) if mode == "redis-server" else None
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False
    )
    # Only the real server's loop-lag probe: the runner reads the same one from every design.
    registry = CollectorRegistry()
    loop_lag = loop_lag_histogram(registry)
    stats = Stats()

    @sio.on("ping")
    async def ping(_sid: str, _data: Any = None) -> str:
        return "pong"

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        tasks = [asyncio.create_task(probe_loop_lag(loop_lag))]
        if mode == "thread-direct":
            threading.Thread(
                target=thread_direct, args=(sio, settings, loop, stop, stats), daemon=True
            ).start()
        elif mode == "naive":
            threading.Thread(
                target=asyncio.run, args=(naive_consume(sio, settings, stop, stats),), daemon=True
            ).start()
        elif mode == "aiobotocore":
            tasks.append(asyncio.create_task(aiobotocore_consume(sio, settings, stats)))
        elif mode == "minimal":
            tasks.append(asyncio.create_task(minimal_router(sio, settings, stats)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            logger.info("emitted %d; errors %s", stats.emitted, json.dumps(stats.errors))

    async def healthz(_request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "mode": mode,
                "emitted": stats.emitted,
                "errors": stats.errors,
                "workers_connected": len(stats.workers),
            }
        )

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    web = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics_endpoint)], lifespan=lifespan
    )
    return socketio.ASGIApp(sio, other_asgi_app=web)


def redis_worker(settings: Settings, redis_url: str) -> None:
    """The external emitter: blocking boto3, emit through Redis, then delete."""
    manager = socketio.RedisManager(redis_url, write_only=True)
    sqs = make_sqs_client(settings)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    stats = Stats()
    while not stopping:
        try:
            messages = sqs.receive_message(**receive_args(settings)).get("Messages", [])
            received_ms = int(time.time() * 1000)
            for m in messages:
                envelope = parse(m, settings)
                manager.emit(envelope.event, payload(m, envelope.data, received_ms), namespace="/")
                stats.emitted += 1
            delete_all(sqs, settings, messages)
        except DecodeError as exc:
            stats.error(exc)
        except Exception as exc:
            stats.error(exc)
            time.sleep(0.5)
    logger.info("emitted %d; errors %s", stats.emitted, json.dumps(stats.errors))


def minimal_worker(settings: Settings) -> None:
    """The minimal relay's worker: one stop-and-wait loop over blocking boto3 and a DEALER."""
    import zmq

    sqs = make_sqs_client(settings)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(settings.worker_endpoints[0])
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _f: stopping.append(signum))
    stats = Stats()
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)

    def request(body: dict[str, Any]) -> dict[str, Any] | None:
        dealer.send(json.dumps(body).encode())
        if not poller.poll(MINIMAL_ACK_TIMEOUT_S * 1000):
            return None
        answer: dict[str, Any] = json.loads(dealer.recv())
        return answer

    while not stopping and request({"ping": True}) is None:
        pass  # a slow joiner loses nothing: no receive before the server answers
    while not stopping:
        try:
            messages = sqs.receive_message(**receive_args(settings)).get("Messages", [])
            if not messages:
                continue
            received_ms = int(time.time() * 1000)
            batch = []
            for m in messages:
                envelope = parse(m, settings)
                batch.append(
                    {"id": m["MessageId"], "event": envelope.event, "data": envelope.data,
                     "received_ms": received_ms}
                )  # fmt: skip
            ack = request({"messages": batch})
            acked = set(ack["ids"]) if ack else set()
            delete_all(sqs, settings, [m for m in messages if m["MessageId"] in acked])
            unacked = [m for m in messages if m["MessageId"] not in acked]
            if unacked:
                sqs.change_message_visibility_batch(
                    QueueUrl=settings.sqs_queue_url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for n, m in enumerate(unacked)
                    ],
                )
            stats.emitted += len(acked)
        except Exception as exc:
            stats.error(exc)
            time.sleep(0.5)
    dealer.close(linger=0)
    context.term()
    logger.info("delivered %d; errors %s", stats.emitted, json.dumps(stats.errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.variants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", choices=[*SERVER_MODES, *WORKER_MODES])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    if args.mode == "redis-worker":
        redis_worker(settings, args.redis_url)
        return 0
    if args.mode == "minimal-worker":
        minimal_worker(settings)
        return 0
    app = make_app(args.mode, settings, args.redis_url)
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
