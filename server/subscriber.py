"""The async ZeroMQ subscriber task: receive batches from workers, emit, confirm.

python-socketio's own `ZmqManager` needs eventlet and does not run under uvicorn, so this is
our own asyncio loop on a `zmq.asyncio` ROUTER socket. The ROUTER lets the server answer the
very worker that sent a batch: the answer (`ack`) lists the MessageIds it emitted, or had
already emitted (a redelivery), and only those are deleted from SQS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import socketio
import zmq
import zmq.asyncio

from server.dedup import RecentIds
from shared import wire
from shared.settings import Settings
from shared.wire import Delivery, WireError

logger = logging.getLogger(__name__)

_POLL_MS = 100  # how often the loop looks at the closing flag while idle


class Subscriber:
    """Owns the ROUTER socket and the de-duplication window.

    >>> subscriber = Subscriber(sio=sio, settings=settings)
    >>> subscriber.bind()                  # raises zmq.ZMQError if the endpoint is taken
    >>> task = asyncio.create_task(subscriber.run())
    >>> await subscriber.stop()            # finishes the batch in hand, then returns
    """

    def __init__(
        self,
        *,
        sio: socketio.AsyncServer,
        settings: Settings,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self._sio = sio
        self._settings = settings
        self._context = context or zmq.asyncio.Context.instance()
        self._socket: zmq.asyncio.Socket | None = None
        self._seen = RecentIds(settings.dedup_window)
        self._workers = RecentIds(1024)
        self._closing = asyncio.Event()
        self.running = False
        self.emitted = 0
        self.duplicates = 0
        self.failed = 0

    def bind(self) -> None:
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self._settings.zmq_bind)
        except zmq.ZMQError as exc:
            sock.close()
            raise zmq.ZMQError(
                exc.errno, f"cannot bind ZMQ_BIND={self._settings.zmq_bind}: {exc}"
            ) from None
        self._socket = sock
        logger.info("ZeroMQ subscriber bound to %s", self._settings.zmq_bind)

    async def run(self) -> None:
        """Serve until :meth:`stop`. A bad message is logged and skipped, never fatal."""
        assert self._socket is not None, "call bind() first"
        self.running = True
        try:
            while not self._closing.is_set():
                try:
                    if not await self._socket.poll(_POLL_MS):
                        continue
                    frames = await self._socket.recv_multipart()
                    await self._handle(frames)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("ZeroMQ subscriber error; continuing")
        finally:
            self.running = False

    async def stop(self) -> None:
        """Stop taking batches; a batch already in hand is emitted and confirmed first."""
        self._closing.set()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        logger.info(
            "ZeroMQ subscriber stopped: emitted %d, duplicates dropped %d, emit failures %d",
            self.emitted,
            self.duplicates,
            self.failed,
        )

    async def _handle(self, frames: list[bytes]) -> None:
        assert self._socket is not None
        identity, rest = frames[0], frames[1:]
        try:
            kind, body = wire.decode(rest)
            if kind == wire.PING:
                if identity.hex() not in self._workers:
                    self._workers.add(identity.hex())
                    logger.info("Worker %s connected", identity.hex())
                await self._socket.send_multipart([identity, *wire.encode(wire.PONG)])
            elif kind == wire.DELIVER:
                batch, deliveries = wire.parse_deliver(body)
                confirmed = await self.emit(deliveries)
                await self._socket.send_multipart([identity, *wire.ack(batch, confirmed)])
            else:
                raise WireError(f"unexpected {kind.decode()} from a worker")
        except WireError as exc:
            logger.warning("Ignoring a malformed message from worker %s: %s", identity.hex(), exc)

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        """Emit each delivery not seen before; return the ids that are safe to delete."""
        confirmed = []
        for delivery in deliveries:
            if delivery.message_id in self._seen:
                self.duplicates += 1
                logger.debug("Dropped duplicate %s", delivery.message_id)
                confirmed.append(delivery.message_id)
                continue
            envelope = delivery.envelope
            try:
                await self._sio.emit(
                    envelope.event,
                    client_payload(delivery),
                    to=envelope.room,
                    namespace=envelope.namespace,
                )
            except Exception:
                self.failed += 1
                logger.exception(
                    "Emit of %s failed; not confirmed, SQS will redeliver it", delivery.message_id
                )
                continue
            self._seen.add(delivery.message_id)
            self.emitted += 1
            confirmed.append(delivery.message_id)
        return confirmed


def client_payload(delivery: Delivery) -> dict[str, Any]:
    """The one argument every client event carries (documented in the README)."""
    return {
        "id": delivery.message_id,
        "data": delivery.envelope.data,
        "room": delivery.envelope.room,
        "sent_ms": delivery.sent_ms,
        "emitted_ms": int(time.time() * 1000),
    }
