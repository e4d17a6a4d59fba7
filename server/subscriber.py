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

import socketio
import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from server.dedup import RecentIds
from server.metrics import ServerMetrics
from server.payload import ENTRY_OVERHEAD_BYTES, client_payload, encode_data
from server.replay import ReplayBuffer, Shared
from shared import counters as c
from shared import wire
from shared.counters import Counters
from shared.curve import AllowedKeys, configure_server
from shared.settings import Settings
from shared.wire import Delivery, WireError

logger = logging.getLogger(__name__)

_POLL_MS = 100  # how often the loop looks at the closing flag while idle

#: Every client of a namespace is in this room; events without a room go to it. It stands in
#: for a namespace-wide broadcast so that a resuming client joins it only after its replay.
BROADCAST_ROOM = "relay:all"


def target_room(room: str | None) -> str:
    return room if room is not None else BROADCAST_ROOM


class Subscriber:
    """Owns the ROUTER socket, the de-duplication window and the emitting of events.

    >>> subscriber = Subscriber(sio=sio, settings=settings, replay=replay)
    >>> subscriber.bind()          # raises zmq.ZMQError if the endpoint is taken
    >>> subscriber.start()         # the task, in the running loop
    >>> await subscriber.close()   # stop taking batches, finish the one in hand, close
    """

    def __init__(
        self,
        *,
        sio: socketio.AsyncServer,
        settings: Settings,
        replay: ReplayBuffer,
        counters: Counters,
        metrics: ServerMetrics,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self._sio = sio
        self._settings = settings
        self._replay = replay
        self.counters = counters
        self._metrics = metrics
        self.workers_connected = 0
        self._monitor_task: asyncio.Task[None] | None = None
        self._context = context or zmq.asyncio.Context.instance()
        self._socket: zmq.asyncio.Socket | None = None
        self._seen = RecentIds(window_s=settings.dedup_window_s, max_ids=settings.dedup_max_ids)
        self._forgotten_counted = 0
        self._workers = RecentIds(window_s=86_400, max_ids=1024)
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._authenticator: AsyncioAuthenticator | None = None
        self.running = False

    @property
    def workers_seen(self) -> int:
        return len(self._workers)

    def bind(self) -> None:
        sock = self._context.socket(zmq.ROUTER)
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
        try:
            sock.bind(self._settings.zmq_bind)
        except zmq.ZMQError as exc:
            sock.close()
            raise zmq.ZMQError(
                exc.errno, f"cannot bind ZMQ_BIND={self._settings.zmq_bind}: {exc}"
            ) from None
        self._socket = sock
        logger.info("ZeroMQ subscriber bound to %s", self._settings.zmq_bind)

    def start(self) -> None:
        assert self._socket is not None, "call bind() first"
        self._task = asyncio.create_task(self.run(), name="zmq-subscriber")
        monitor = self._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._monitor_task = asyncio.create_task(self._monitor(monitor), name="zmq-monitor")

    async def _monitor(self, monitor: zmq.asyncio.Socket) -> None:
        """Count worker connections from the socket's own events (for /readyz and /metrics)."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
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
            monitor.close(linger=0)

    async def run(self) -> None:
        """Serve until :meth:`close`. A bad message is logged and skipped, never fatal."""
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

    async def close(self) -> None:
        """Stop taking batches; the batch in hand is emitted and confirmed first. Idempotent:
        the server calls it before it closes client connections, the lifespan after."""
        if self._socket is None:
            return
        self._closing.set()
        logger.info("Draining: no new batches; finishing the one in hand")
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self._settings.shutdown_timeout_s)
            except TimeoutError:
                logger.warning(
                    "ZeroMQ subscriber did not stop in %.1f s", self._settings.shutdown_timeout_s
                )
        if self._monitor_task is not None:
            self._monitor_task.cancel()
        self._socket.close(linger=0)
        self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()
        logger.info("ZeroMQ subscriber stopped: %s", self.counters.summary(_SUMMARY))

    async def _handle(self, frames: list[bytes]) -> None:
        assert self._socket is not None
        identity, rest = frames[0], frames[1:]
        try:
            kind, body = wire.decode(rest)
            if kind == wire.PING:
                if identity.hex() not in self._workers:
                    self._workers.add(identity.hex())
                    logger.info("Worker %s connected", identity.hex())
                self._cover_visibility_timeout(wire.parse_ping(body))
                await self._socket.send_multipart([identity, *wire.encode(wire.PONG)])
            elif kind == wire.DELIVER:
                batch, deliveries = wire.parse_deliver(body)
                self._metrics.batch_size.observe(len(deliveries))
                confirmed = await self.emit(deliveries)
                await self._socket.send_multipart([identity, *wire.ack(batch, confirmed)])
            else:
                raise WireError(f"unexpected {kind.decode()} from a worker")
        except WireError as exc:
            logger.warning("Ignoring a malformed message from worker %s: %s", identity.hex(), exc)

    def _cover_visibility_timeout(self, visibility_timeout_s: float | None) -> None:
        """A redelivery comes up to one visibility timeout (plus the ack wait) after the
        receive that failed: remember emitted ids at least that long."""
        if visibility_timeout_s is None:
            return
        if self._seen.cover(visibility_timeout_s + self._settings.ack_timeout_s):
            logger.info(
                "De-duplication window raised to %.0f s (a worker reports a visibility timeout "
                "of %.0f s)",
                self._seen.window_s,
                visibility_timeout_s,
            )

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        """Emit each delivery to the rooms it has not reached yet; return the ids that are
        safe to delete: emitted to every room, now or before (a redelivery)."""
        confirmed = []
        for delivery in deliveries:
            outcome = await self._emit_one(delivery)
            if outcome is None:
                continue
            if outcome == 0:
                self.counters.inc(c.DUPLICATE_DROPPED)
                logger.debug("Dropped duplicate %s", delivery.message_id)
            else:
                self.counters.inc(c.EMITTED)
            confirmed.append(delivery.message_id)
        forgotten = self._seen.forgotten_early - self._forgotten_counted
        if forgotten:
            self.counters.inc(c.DEDUP_FORGOTTEN_EARLY, forgotten)
            self._forgotten_counted += forgotten
        return confirmed

    async def _emit_one(self, delivery: Delivery) -> int | None:
        """Emit to each target room not reached before (a stream each, with its own offset).

        Returns how many rooms it went to now (0: a duplicate), or None if it failed.
        The data is encoded once for all rooms; a room nobody is in costs no encode at all.
        """
        envelope = delivery.envelope
        rooms = [r for r in envelope.rooms if (delivery.message_id, r) not in self._seen]
        if not rooms:
            return 0
        try:
            data, size = encode_data(envelope.data)
        except ValueError as exc:
            self.counters.inc(c.EMIT_FAILED)
            logger.error("Message %s cannot be sent to clients: %s", delivery.message_id, exc)
            return None
        shared = Shared(size)
        for room in rooms:
            stream = (envelope.namespace, room)
            offset = self._replay.next_offset(stream)
            payload = client_payload(delivery, room, offset, self._replay.epoch, data)
            # Into the history before it goes out, with no await in between: a client that
            # resumes meanwhile finds it there or gets it live, never neither.
            self._replay.append(
                stream, offset, envelope.event, payload, ENTRY_OVERHEAD_BYTES, shared
            )
            started = time.perf_counter()
            try:
                if self._has_members(envelope.namespace, target_room(room)):
                    await self._sio.emit(
                        envelope.event, payload, to=target_room(room), namespace=envelope.namespace
                    )
            except Exception:
                self.counters.inc(c.EMIT_FAILED)
                logger.exception(
                    "Emit of %s failed; not confirmed, SQS will redeliver it", delivery.message_id
                )
                return None
            self._seen.add((delivery.message_id, room))
            self._metrics.emit_seconds.observe(time.perf_counter() - started)
            if delivery.sent_ms is not None:
                self._metrics.end_to_end_seconds.observe(
                    max(0.0, payload["emitted_ms"] - delivery.sent_ms) / 1000
                )
        return len(rooms)

    def _has_members(self, namespace: str, room: str) -> bool:
        # The manager's own room table (python-socketio has no public "is anyone in it"; its
        # get_participants copies the whole room): skip the packet for an empty room.
        rooms = getattr(self._sio, "manager", None)
        if rooms is None:
            return True  # a test double without a manager
        return bool(rooms.rooms.get(namespace, {}).get(room))


_SUMMARY = (
    c.EMITTED,
    c.DUPLICATE_DROPPED,
    c.EMIT_FAILED,
    c.REPLAYED,
    c.RECOVERY_FAILED,
    c.RESUME_REFUSED,
    c.DEDUP_FORGOTTEN_EARLY,
)
