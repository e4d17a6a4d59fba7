"""The server's side of the ZeroMQ hand-off: the ROUTER socket workers deliver batches to.

python-socketio's own `ZmqManager` needs eventlet and does not run under uvicorn, so this is
our own asyncio loop on a ROUTER socket, read through server/intake/zmq_reader.py (a plain
socket: zmq.asyncio's futures cost more than the receive itself). Answers never wait: a
ROUTER's send does not block. The ROUTER lets the server answer the
very worker that sent a batch: the answer (`ack`) lists the MessageIds the handler says are
safe to delete. This module owns the socket, its security (CURVE with ZAP) and its monitor,
and speaks the wire format (shared/wire.py); what a batch becomes is the handler's job
(server/intake/emitter.py). The worker's side is worker/handoff.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from server.intake.zmq_reader import NOBLOCK, SocketReader
from shared import wire
from shared.curve import AllowedKeys, configure_server
from shared.settings import Settings
from shared.wire import Delivery, WireError

logger = logging.getLogger(__name__)

#: Worker identities remembered, only to log each one's first ping.
_KNOWN_WORKERS = 1024


class DeliveryHandler(Protocol):
    @property
    def ready(self) -> bool:
        """Whether batches can be taken now; while not, workers' pings go unanswered, so that
        they stop taking from SQS (cluster mode: Redis cannot be reached)."""
        ...

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        """Handle one batch; return the MessageIds that are safe to delete from SQS."""
        ...

    def cover_visibility_timeout(self, visibility_timeout_s: float | None) -> None:
        """A worker reported its queue's visibility timeout."""
        ...


class RouterHandoff:
    """Owns the ROUTER socket; hands each batch to `handler` and acks what it returns.

    Usage, in the running event loop::

        handoff = RouterHandoff(settings=settings, handler=emitter)
        handoff.bind()                  # zmq.ZMQError naming ZMQ_BIND if it is taken; counts
                                        # worker connections from then on
        handoff.start()                 # the receive loop
        await handoff.close(timeout_s)  # stop taking batches, finish the one in hand, close
    """

    def __init__(
        self,
        *,
        settings: Settings,
        handler: DeliveryHandler,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        # The authenticator needs zmq.asyncio's context; the sockets are plain ones in the
        # same libzmq context (ZAP is an inproc socket of that context).
        self._context = context or zmq.asyncio.Context.instance()
        self._plain: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(self._context)
        self._socket: zmq.Socket[bytes] | None = None
        self._reader: SocketReader | None = None
        self._authenticator: AsyncioAuthenticator | None = None
        self._task: asyncio.Task[None] | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._known: dict[bytes, None] = {}
        self.workers_connected = 0
        self.running = False

    def bind(self) -> None:
        sock = self._plain.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if configure_server(sock, self._settings):
            # ZAP: only the listed worker keys get in. The authenticator lives as long as
            # the socket.
            self._authenticator = AsyncioAuthenticator(self._context)
            self._authenticator.start()
            self._authenticator.configure_curve_callback(
                domain="*", credentials_provider=AllowedKeys(self._settings.zmq_curve_client_keys)
            )
            logger.info(
                "ZeroMQ CURVE on: %d worker key(s) allowed",
                len(self._settings.zmq_curve_client_keys),
            )
        # The monitor exists before the bind: libzmq accepts in its own thread, so a worker
        # that is retrying its connect gets in at once, and an ACCEPTED event before the
        # monitor would be missed for good (/readyz and /healthz one worker short).
        monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        try:
            sock.bind(self._settings.zmq_bind)
        except zmq.ZMQError as exc:
            monitor.close(linger=0)
            sock.close()
            raise zmq.ZMQError(
                exc.errno, f"cannot bind ZMQ_BIND={self._settings.zmq_bind}: {exc}"
            ) from None
        self._socket = sock
        self._reader = SocketReader(sock)
        self._monitor_task = asyncio.create_task(self._monitor(monitor), name="zmq-monitor")
        logger.info("ZeroMQ subscriber bound to %s", self._settings.zmq_bind)

    def start(self) -> None:
        assert self._socket is not None, "call bind() first"
        self._task = asyncio.create_task(self.run(), name="zmq-handoff")

    async def _monitor(self, monitor: zmq.Socket[bytes]) -> None:
        """Count worker connections from the socket's own events (for /readyz and /metrics)."""
        reader = SocketReader(monitor)
        try:
            while True:
                event = parse_monitor_message(await reader.recv_multipart())
                if event["event"] == zmq.EVENT_ACCEPTED:
                    self.workers_connected += 1
                elif event["event"] == zmq.EVENT_DISCONNECTED:
                    self.workers_connected = max(0, self.workers_connected - 1)
                    logger.info("A worker disconnected (%d connected)", self.workers_connected)
        except asyncio.CancelledError:
            raise
        except zmq.ZMQError:
            pass  # the socket closed under the monitor: shutting down
        finally:
            reader.close()
            monitor.close(linger=0)

    async def run(self) -> None:
        """Serve until :meth:`close`. A bad message is logged and skipped, never fatal."""
        assert self._socket is not None, "call bind() first"
        self.running = True
        try:
            while not self._closing.is_set():
                try:
                    frames = await self._receive()
                    if frames is None:
                        break
                    await self._handle(frames)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("ZeroMQ hand-off error; continuing")
        finally:
            self.running = False

    async def _receive(self) -> list[bytes] | None:
        """The next message from a worker; None once :meth:`close` ended the wait. One wait per
        message, for the message itself (a poll with a timeout, to look at the closing flag
        now and then, cost as much again as the receive)."""
        assert self._reader is not None
        try:
            return await self._reader.recv_multipart()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closing.is_set() and not (task is not None and task.cancelling()):
                return None
            raise

    async def close(self, deadline: float) -> None:
        """Stop taking batches; the batch in hand is handled and confirmed first, by
        `deadline` (a `time.monotonic()` instant). Idempotent."""
        if self._socket is None:
            return
        self._closing.set()
        if self._reader is not None:
            self._reader.interrupt()  # waiting for a batch: none is in hand
        logger.info("Draining: no new batches; finishing the one in hand")
        if self._task is not None:
            left = max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._task, left)
            except TimeoutError:
                logger.warning("The batch in hand was not finished in %.1f s", left)
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            await asyncio.wait([self._monitor_task])  # it closes its socket: none left open
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._socket.close(linger=0)
        self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()

    async def _handle(self, frames: list[bytes]) -> None:
        assert self._socket is not None
        identity, rest = frames[0], frames[1:]
        try:
            kind, body = wire.decode(rest)
            if kind == wire.PING:
                if not self._handler.ready:
                    return  # the worker's set drops this server; it rejoins on the next pong
                self._greet(identity)
                self._handler.cover_visibility_timeout(wire.parse_ping(body))
                self._answer(identity, wire.encode(wire.PONG))
            elif kind == wire.DELIVER:
                batch, deliveries = wire.parse_deliver(body)
                confirmed = await self._handler.emit(deliveries) if self._handler.ready else []
                # Said so when it cannot take batches: the worker leaves this server out until
                # it answers pings again and hands the batch to another one at once, instead
                # of waiting ACK_TIMEOUT_S or taking it back from SQS again and again (each
                # receive counts toward the dead-letter queue).
                ready = bool(confirmed) or self._handler.ready
                self._answer(identity, wire.ack(batch, confirmed, ready=ready))
            else:
                raise WireError(f"unexpected {kind.decode()} from a worker")
        except WireError as exc:
            logger.warning("Ignoring a malformed message from worker %s: %s", identity.hex(), exc)

    def _answer(self, identity: bytes, frames: list[bytes]) -> None:
        """Send to the worker `identity`. A ROUTER never blocks a send: an answer to a worker
        that is gone (or whose queue is full) is dropped, and that worker hands the batch
        again after its ack timeout."""
        if self._socket is None:
            return  # closed while the batch was in hand: past its deadline
        self._socket.send_multipart([identity, *frames], flags=NOBLOCK)

    def _greet(self, identity: bytes) -> None:
        if identity in self._known:
            return
        self._known[identity] = None
        if len(self._known) > _KNOWN_WORKERS:
            del self._known[next(iter(self._known))]
        logger.info("Worker %s connected", identity.hex())
