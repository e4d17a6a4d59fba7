"""Hands batches to the server(s) over ZeroMQ and collects their confirmations.

Blocking pyzmq, one DEALER socket per server endpoint. The server binds (the stable side),
workers connect. `IMMEDIATE` keeps messages off connections that are not up yet, so a send
fails fast (and the worker waits) instead of queueing into a server that is not there.
A ZeroMQ socket belongs to one thread: each worker (process or thread) has its own DealerHandoff.

Servers come and go without touching the workers' settings: an endpoint may name a host
(``tcp://relay-servers:5555``), which is resolved again every `resolve_s` seconds, as container
platforms give one name to all their replicas; each address it has gets a socket of its own.

Cluster mode (servers sharing Redis, server/history/cluster.py; `one_server`): each batch goes
to one server of the delivery set, the next one each time; one that does not confirm leaves the set
and the batch goes to the next (Redis drops what the first had already appended).

Otherwise, with several servers, each gets every message while it answers. The servers that
answer form the *delivery set*: one that cannot be sent to, does not confirm a batch within
`ack_timeout_s` or leaves a ping unanswered that long, leaves the set (counted as
`server_unavailable`) until it answers a ping again, and delivery goes on to the others. A
message is confirmed once every server in the set confirmed it. With no server in the set the
worker receives nothing (backpressure) until one answers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import zmq

from shared import counters as c
from shared import wire
from shared.counters import Counters
from shared.deadline import StopDeadline
from shared.wire import Delivery, WireError
from worker.endpoints import resolve_endpoint

logger = logging.getLogger(__name__)

_POLL_SLICE_S = 0.1  # how often waits look at the stop flag
#: How often every server is pinged: absent ones so that they can rejoin, present ones so that
#: a hung one is noticed between batches (and each learns the visibility timeout).
_PING_INTERVAL_S = 0.5

_Socket = zmq.Socket[bytes]


class DealerHandoff:
    """DEALER sockets to every server; `deliver()` returns the MessageIds that every server in
    the delivery set confirmed.

    Used as::

        handoff = DealerHandoff(endpoints=["tcp://127.0.0.1:5555"], ack_timeout_s=5)
        handoff.set_visibility_timeout(30)         # pings tell the servers
        handoff.wait_ready(stop)                   # blocks until a server answers a ping
        confirmed = handoff.deliver(deliveries, stop)  # ids safe to delete from SQS
    """

    def __init__(
        self,
        *,
        endpoints: Iterable[str],
        ack_timeout_s: float,
        context: zmq.Context[_Socket] | None = None,
        configure: Callable[[_Socket], object] | None = None,
        counters: Counters,
        one_server: bool = False,
        resolve_s: float = 5.0,
        resolve: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._context = context or zmq.Context.instance()
        self._ack_timeout_s = ack_timeout_s
        self._configure = configure
        self.counters = counters
        self._one_server = one_server
        self._endpoints = list(endpoints)
        self._resolve = resolve or resolve_endpoint
        self._resolve_s = resolve_s
        self._next_resolve = 0.0
        self._sockets: dict[_Socket, str] = {}
        self._resolved: dict[str, list[str]] = {}  # what each endpoint last resolved to
        self._poller = zmq.Poller()
        self._refresh(time.monotonic())
        self._batch = 0
        self._up: set[_Socket] = set()  # the delivery set
        self._seen: set[_Socket] = set()  # servers that have ever answered
        self._unanswered: dict[_Socket, float] = {}  # oldest unanswered ping, per server
        self._unsent: set[_Socket] = set()  # servers the last ping could not be sent to
        self._next_ping = 0.0
        self._started = False
        self._visibility_timeout_s: float | None = None
        self._turn = 0  # cluster mode: which server of the set takes the next batch

    @property
    def available(self) -> list[str]:
        """The endpoints in the delivery set."""
        return [endpoint for sock, endpoint in self._sockets.items() if sock in self._up]

    def set_visibility_timeout(self, seconds: float | None) -> None:
        """The queue's visibility timeout, which every ping from now on tells the servers (they
        remember MessageIds at least that long to drop redeliveries)."""
        self._visibility_timeout_s = seconds

    def wait_ready(self, stop: threading.Event) -> bool:
        """Block until at least one server is in the delivery set; False if `stop` is set.

        Workers call this before each receive, so that a worker never takes messages off the
        queue that no server would take (slow joiner, backpressure). The first call gives every
        server up to `ack_timeout_s` to answer, so that servers started together all get the
        first batch; later calls return as soon as one server is in the set. Each call also
        pings the servers when due, without blocking, so that absent ones can rejoin.
        """
        started = time.monotonic()
        logged = False
        while not stop.is_set():
            now = time.monotonic()
            self._heartbeat(now)
            if self._up and (
                self._started
                or len(self._up) == len(self._sockets)
                or now - started >= self._ack_timeout_s
            ):
                self._start()
                return True
            if not self._up and not logged and now - started >= _PING_INTERVAL_S:
                logger.info(
                    "Waiting for server(s) at %s; no message is received from SQS until then",
                    ", ".join(self._sockets.values()),
                )
                logged = True
            self._take(_POLL_SLICE_S)
        return False

    def deliver(
        self,
        deliveries: list[Delivery],
        stop: threading.Event,
        *,
        deadline: Callable[[], float | None] | None = None,
    ) -> set[str]:
        """Send one batch to every server in the delivery set; return the MessageIds that all
        of them confirmed.

        Waits at most `ack_timeout_s`; a server that has not confirmed by then leaves the set
        and the others' confirmations count. Once `stop` is set the wait is shorter (at most
        `StopDeadline.STOPPING_ACK_GRACE_S`, and never past `deadline()`, a `time.monotonic()`
        value): a server cut short that way stays in the set, and the batch is not confirmed.
        """
        if not deliveries:
            return set()
        self._heartbeat(time.monotonic())
        if not self._one_server:
            return self._deliver_to(list(self._up), deliveries, stop, deadline)
        tried: set[_Socket] = set()
        while not stop.is_set():
            candidates = [sock for sock in self._sockets if sock in self._up and sock not in tried]
            if not candidates:
                break
            sock = candidates[self._turn % len(candidates)]
            self._turn += 1
            tried.add(sock)
            confirmed = self._deliver_to([sock], deliveries, stop, deadline)
            if confirmed or sock in self._up:
                return confirmed  # confirmed, or answered that it cannot (Redis down)
        return set()

    def _deliver_to(
        self,
        targets: list[_Socket],
        deliveries: list[Delivery],
        stop: threading.Event,
        deadline: Callable[[], float | None] | None,
    ) -> set[str]:
        self._batch += 1
        batch = self._batch
        frames = wire.deliver(batch, deliveries)
        pending: dict[_Socket, str] = {}
        for sock, endpoint in self._sockets.items():
            if sock not in targets:
                continue
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
                pending[sock] = endpoint
            except zmq.Again:
                self._leave(sock, f"is not connected (batch {batch} not handed to it)")
        if not pending:
            logger.warning("No server to hand batch %d to", batch)
            return set()
        logger.debug(
            "Batch %d (%d messages) handed to %s; waiting for confirmation",
            batch,
            len(deliveries),
            ", ".join(pending.values()),
        )
        confirmations: list[set[str]] = []
        ack_deadline = time.monotonic() + self._ack_timeout_s
        stopping_since: float | None = None
        end = ack_deadline
        while pending:
            now = time.monotonic()
            end = ack_deadline
            if stop.is_set():
                stopping_since = stopping_since or now
                end = min(end, stopping_since + StopDeadline.STOPPING_ACK_GRACE_S)
                limit = deadline() if deadline is not None else None
                if limit is not None:
                    end = min(end, limit)
            if now >= end:
                break
            for sock, kind, body in self._take(min(_POLL_SLICE_S, end - now)):
                if kind != wire.ACK or sock not in pending:
                    continue
                acked_batch, ids = wire.parse_ack(body)
                if acked_batch != batch:
                    continue  # a late answer to a batch that already timed out
                del pending[sock]
                if not wire.ack_ready(body):
                    self._leave(sock, f"cannot take batches now (it answered batch {batch} so)")
                    continue
                confirmations.append(set(ids))
            self._ping_if_due(time.monotonic())
        if pending:
            if end < ack_deadline:
                logger.warning(
                    "Stopping: no confirmation for batch %d (%d messages) from %s in time; it "
                    "goes back to the queue",
                    batch,
                    len(deliveries),
                    ", ".join(pending.values()),
                )
                return set()
            for sock in pending:
                self._leave(
                    sock,
                    f"did not confirm batch {batch} ({len(deliveries)} messages) within "
                    f"{self._ack_timeout_s:.1f} s",
                )
        return set.intersection(*confirmations) if confirmations else set()

    # --- membership ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        for sock, endpoint in self._sockets.items():
            if sock not in self._up:
                self.counters.inc(c.SERVER_UNAVAILABLE)
                logger.warning(
                    "Server at %s did not answer within %.1f s; delivering to %s until it does",
                    endpoint,
                    self._ack_timeout_s,
                    ", ".join(self.available),
                )

    def _join(self, sock: _Socket) -> None:
        if sock in self._up:
            return
        self._up.add(sock)
        if sock in self._seen and self._started:
            logger.info(
                "Server at %s answered again; it rejoins the delivery set", self._sockets[sock]
            )
        else:
            logger.info("Server at %s is ready", self._sockets[sock])
        self._seen.add(sock)

    def _leave(self, sock: _Socket, why: str) -> None:
        if sock not in self._up:
            return
        self._up.discard(sock)
        self._unanswered.pop(sock, None)
        self.counters.inc(c.SERVER_UNAVAILABLE)
        others = self.available
        logger.warning(
            "Server at %s %s; it leaves the delivery set until it answers a ping again (%s)",
            self._sockets[sock],
            why,
            f"delivering to {', '.join(others)}"
            if others
            else "no server left: receiving nothing until one answers",
        )

    # --- pings and replies --------------------------------------------------------------------

    # --- endpoints -----------------------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        """Resolve the endpoints again when due; connect to new addresses, drop gone ones."""
        if now < self._next_resolve:
            return
        self._next_resolve = now + self._resolve_s
        wanted: list[str] = []
        for endpoint in self._endpoints:
            try:
                self._resolved[endpoint] = self._resolve(endpoint)
            except OSError as exc:
                # Keep what it resolved to before: a DNS blip is not a server going away.
                logger.warning("Cannot resolve %s (%s); keeping its last addresses", endpoint, exc)
            wanted += self._resolved.get(endpoint, [])
        current = {endpoint: sock for sock, endpoint in self._sockets.items()}
        for endpoint in dict.fromkeys(wanted):
            if endpoint not in current:
                self._connect(endpoint)
        for endpoint, sock in current.items():
            if endpoint not in wanted:
                logger.info("Server address %s is no longer listed; disconnecting", endpoint)
                self._disconnect(sock)

    def _connect(self, endpoint: str) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        if self._configure is not None:
            self._configure(sock)  # CURVE keys, for one
        sock.connect(endpoint)
        self._sockets[sock] = endpoint
        self._poller.register(sock, zmq.POLLIN)

    def _disconnect(self, sock: _Socket) -> None:
        self._up.discard(sock)
        self._seen.discard(sock)
        self._unanswered.pop(sock, None)
        self._unsent.discard(sock)
        with contextlib.suppress(zmq.ZMQError):
            self._poller.unregister(sock)
        sock.close(linger=0)
        del self._sockets[sock]

    def _heartbeat(self, now: float) -> None:
        """Take the replies already in, ping when due, and drop a server from the set whose
        oldest unanswered ping is older than `ack_timeout_s`. Never blocks."""
        self._refresh(now)
        self._take(0)
        self._ping_if_due(now)
        for sock in list(self._up):
            since = self._unanswered.get(sock)
            if since is not None and now - since > self._ack_timeout_s:
                self._leave(sock, f"has not answered a ping for {self._ack_timeout_s:.1f} s")

    def _ping_if_due(self, now: float) -> None:
        """Ping every server each `_PING_INTERVAL_S`; in between, retry those that could not
        be sent to (not connected yet: a server that just came up should not wait 0.5 s)."""
        if now >= self._next_ping:
            self._next_ping = now + _PING_INTERVAL_S
            targets = list(self._sockets)
        else:
            targets = [sock for sock in self._sockets if sock in self._unsent]
        frames = wire.ping(self._visibility_timeout_s)
        for sock in targets:
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:  # not connected (yet, or any more)
                self._unsent.add(sock)
                self._leave(sock, "is not connected")
                continue
            self._unsent.discard(sock)
            self._unanswered.setdefault(sock, now)

    def _take(self, timeout_s: float) -> list[tuple[_Socket, bytes, dict[str, Any]]]:
        """Replies that arrive within `timeout_s`; a pong puts its server (back) in the set."""
        received = self._poll(timeout_s)
        for sock, kind, _body in received:
            self._unanswered.pop(sock, None)
            if kind == wire.PONG:
                self._join(sock)
        return received

    def _poll(self, timeout_s: float) -> list[tuple[_Socket, bytes, dict[str, Any]]]:
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
            with contextlib.suppress(zmq.ZMQError):
                self._poller.unregister(sock)
            sock.close(linger=0)
        self._sockets.clear()
        self._up.clear()
