"""Hands batches to the server(s) over ZeroMQ and collects their confirmations.

Blocking pyzmq, one DEALER socket per server endpoint. The server binds (the stable side),
workers connect. `IMMEDIATE` keeps messages off connections that are not up yet, so a send
fails fast (and the worker waits) instead of queueing into a server that is not there.
A ZeroMQ socket belongs to one thread: each worker (process or thread) has its own Handoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import zmq

from shared import wire
from shared.wire import Delivery, WireError

logger = logging.getLogger(__name__)

_POLL_SLICE_S = 0.1  # how often waits look at the stop flag
_PING_INTERVAL_S = 0.5
#: Once stopping, how long a batch already handed off may still wait for its confirmation.
_STOPPING_ACK_GRACE_S = 1.0


class Handoff:
    """DEALER sockets to every server; `deliver()` returns the MessageIds all of them confirmed.

    >>> handoff = Handoff(endpoints=["tcp://127.0.0.1:5555"], ack_timeout_s=5)
    >>> handoff.wait_ready(stop)                       # blocks until a server answers a ping
    >>> confirmed = handoff.deliver(deliveries, stop)  # ids safe to delete from SQS
    """

    def __init__(
        self,
        *,
        endpoints: Iterable[str],
        ack_timeout_s: float,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        configure: Callable[[zmq.Socket[bytes]], object] | None = None,
    ) -> None:
        self._context = context or zmq.Context.instance()
        self._ack_timeout_s = ack_timeout_s
        self._sockets: dict[zmq.Socket[bytes], str] = {}
        self._poller = zmq.Poller()
        for endpoint in endpoints:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            if configure is not None:
                configure(sock)  # CURVE keys, for one
            sock.connect(endpoint)
            self._sockets[sock] = endpoint
            self._poller.register(sock, zmq.POLLIN)
        self._batch = 0
        self._ready = False

    @property
    def endpoints(self) -> list[str]:
        return list(self._sockets.values())

    def wait_ready(self, stop: threading.Event) -> bool:
        """Block until every server answered a ping; False if `stop` was set first.

        Workers call this before each receive while no server is known to be up, so that a
        worker never takes messages off the queue that no server would take (slow joiner).
        """
        if self._ready:
            return True
        waiting = dict(self._sockets)
        logged = False
        while waiting and not stop.is_set():
            for sock in list(waiting):
                with contextlib.suppress(zmq.Again):  # not connected yet
                    sock.send_multipart(wire.encode(wire.PING), flags=zmq.NOBLOCK)
            deadline = time.monotonic() + _PING_INTERVAL_S
            while waiting and time.monotonic() < deadline:
                for sock, kind, _body in self._poll(_POLL_SLICE_S):
                    if kind == wire.PONG and sock in waiting:
                        logger.info("Server at %s is ready", waiting.pop(sock))
            if waiting and not logged:
                logger.info(
                    "Waiting for server(s) at %s; no message is received from SQS until then",
                    ", ".join(waiting.values()),
                )
                logged = True
        self._ready = not waiting
        return self._ready

    def deliver(self, deliveries: list[Delivery], stop: threading.Event) -> set[str]:
        """Send one batch to every server; return the MessageIds that all of them confirmed.

        Waits at most `ack_timeout_s` (less once `stop` is set). A server that does not answer
        in time makes the worker ping again before its next receive.
        """
        if not deliveries:
            return set()
        self._batch += 1
        batch = self._batch
        frames = wire.deliver(batch, deliveries)
        pending: dict[zmq.Socket[bytes], str] = {}
        for sock, endpoint in self._sockets.items():
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
                pending[sock] = endpoint
            except zmq.Again:
                logger.warning(
                    "Server at %s is not connected; batch %d not handed off", endpoint, batch
                )
                self._ready = False
                return set()
        confirmed: set[str] | None = None
        deadline = time.monotonic() + self._ack_timeout_s
        while pending:
            now = time.monotonic()
            if stop.is_set():
                deadline = min(deadline, now + _STOPPING_ACK_GRACE_S)
            if now >= deadline:
                logger.warning(
                    "No confirmation for batch %d (%d messages) from %s within %.1f s",
                    batch,
                    len(deliveries),
                    ", ".join(pending.values()),
                    self._ack_timeout_s,
                )
                self._ready = False
                return set()
            for sock, kind, body in self._poll(min(_POLL_SLICE_S, deadline - now)):
                if kind != wire.ACK or sock not in pending:
                    continue
                acked_batch, ids = wire.parse_ack(body)
                if acked_batch != batch:
                    continue  # a late answer to a batch that already timed out
                del pending[sock]
                confirmed = set(ids) if confirmed is None else confirmed & set(ids)
        return confirmed or set()

    def _poll(self, timeout_s: float) -> list[tuple[zmq.Socket[bytes], bytes, dict[str, Any]]]:
        received = []
        for sock, _event in self._poller.poll(max(0, int(timeout_s * 1000))):
            while True:
                try:
                    frames = sock.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    kind, body = wire.decode(frames)
                except WireError as exc:
                    logger.warning(
                        "Ignoring a malformed reply from %s: %s", self._sockets[sock], exc
                    )
                    continue
                received.append((sock, kind, body))
        return received

    def close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets.clear()
