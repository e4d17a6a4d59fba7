"""One server process's parts, and the one object that owns their lifecycle.

As uvicorn's `Server` owns `startup -> main_loop -> shutdown`, :class:`Relay` owns
`start -> drain -> close`: it builds every part from the settings, and the ASGI lifespan
(server/web/app.py) and the uvicorn server (server/__main__.py) are handed this object and call
it; nobody searches a framework's internals for it or fills its fields from outside.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from server.adapters.admin import AdminUI
from server.adapters.socketio_server import BoundedSocketServer
from server.collector import Collector
from server.control.bus import ControlBus, LocalControlBus
from server.control.disconnect import Disconnector
from server.control.revocations import LocalRevocations, Revocations
from server.history.base import History
from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.history.state import LocalState
from server.intake.emitter import Emitter, RoomSender
from server.intake.handoff import RouterHandoff
from server.intake.tracing import IntakeTracing
from server.metrics import GcObjectCount, ServerMetrics
from server.payload import ClientJSON
from server.presence.local import LocalPresence
from server.presence.outbox import OutboxSender
from server.presence.store import PresenceStore
from server.presence.tracker import Presence
from server.sessions.auth import Authenticator
from server.sessions.handlers import SessionNamespace
from shared import counters as c
from shared.counters import SERVER_NAMES, WORKER_NAMES, Counters
from shared.curve import check_exposure
from shared.deadline import StopDeadline
from shared.settings import Settings
from shared.tracing import start_tracing

if TYPE_CHECKING:
    from server.intake.inprocess import InProcessWorkers

logger = logging.getLogger(__name__)

_SUMMARY = (
    c.EMITTED,
    c.DUPLICATE_DROPPED,
    c.EMIT_FAILED,
    c.REPLAYED,
    c.RECOVERY_FAILED,
    c.RESUME_REFUSED,
    c.DEDUP_FORGOTTEN_EARLY,
)


class Relay:
    """Every part of one server process, started and stopped in order.

    Usage::

        relay = Relay(settings)        # SettingsError for a security setting that cannot work
        app = create_app(relay)        # the ASGI app; its lifespan calls start() and close()
        await relay.drain(deadline)    # stop consuming by a time.monotonic() instant
        relay.close_sessions()         # tell every client to go (they reconnect)

    The stop has one deadline, shared by every step: in-process worker threads first (their
    last batches still get confirmed), then the ZeroMQ hand-off (the batch in hand), then the
    client connections (uvicorn's graceful shutdown, with what is left).
    """

    def __init__(self, settings: Settings) -> None:
        check_exposure(settings)
        self.settings = settings
        self.counters = Counters()
        self.control, self.revocations = _control(settings, self.counters)
        self.auth = Authenticator.from_settings(settings, revocations=self.revocations)
        thread_mode = settings.consumer == "thread"
        # In thread mode the worker threads count into the server's counters: show theirs too.
        self.metrics = ServerMetrics(
            self.counters, SERVER_NAMES + WORKER_NAMES if thread_mode else SERVER_NAMES
        )
        # Young passes, and full ones as clients go, not as they come (server/collector.py);
        # the server process's main() hands it the collector.
        self.collector = Collector(connected=lambda: self.sio.session_count())
        self.metrics.track(
            self.metrics.gc_objects, GcObjectCount(self.collector.made_since_start_up)
        )
        self.sio = BoundedSocketServer(
            on_client_gone=self.collector.client_gone,
            # every client's outgoing queue bounded (server/outgoing/queue.py)
            max_queue_bytes=settings.client_queue_max_bytes,
            max_queue_packets=settings.client_queue_max_packets,
            counters=self.counters,
            async_mode="asgi",
            # the heartbeat, on timers per client (server/adapters/transport.py)
            ping_interval=settings.client_ping_interval_s,
            ping_timeout=settings.client_ping_timeout_s,
            namespaces="*",
            json=ClientJSON,  # strict, and each message's data encoded once (server/payload.py)
            # None is python-socketio's "same origin only"
            cors_allowed_origins=settings.cors_allowed_origins or None,
            logger=False,
            engineio_logger=False,
        )
        self.replay = ReplayBuffer(
            window_s=settings.replay_window_s,
            max_events=settings.replay_max_events,
            max_bytes=settings.replay_max_bytes,
        )
        self.history = _history(settings, self.replay, self.counters)
        # Presence (PRESENCE_ROOMS) and online/offline events (PRESENCE_EVENTS_QUEUE_URL).
        store = _presence_store(settings)
        self.presence = Presence(settings, store=store, sio=self.sio, counters=self.counters)
        self.presence_events = OutboxSender(settings, store=store, counters=self.counters)
        self.handlers = SessionNamespace(
            settings=settings,
            auth=self.auth,
            history=self.history,
            counters=self.counters,
            presence=self.presence if self.presence.enabled else None,
        )
        self.sio.register_namespace(self.handlers)
        # The Socket.IO Admin UI (ADMIN_UI, docs/operations.md): read-only, on its own namespace,
        # opened by its own credentials only (server/adapters/admin.py).
        self.admin: AdminUI | None = None
        if settings.admin_ui:
            assert settings.admin_username is not None and settings.admin_password is not None
            self.admin = AdminUI.instrument(
                self.sio,
                namespace=settings.admin_namespace,
                username=settings.admin_username,
                password=settings.admin_password.get_secret_value(),
                mode=settings.admin_mode,
            )
        self.sender = RoomSender(sio=self.sio, metrics=self.metrics)
        # Traces (OTEL_TRACES_EXPORTER, docs/tracing.md): None while off, and nothing imported.
        self.tracing = start_tracing(settings, service="sqs-relay-server")
        traced = None if self.tracing is None else IntakeTracing(self.tracing, self.sio)
        self.disconnector = Disconnector(
            sio=self.sio, bus=self.control, revocations=self.revocations, counters=self.counters
        )
        self.emitter = Emitter(
            settings=settings,
            history=self.history,
            sender=self.sender,
            counters=self.counters,
            metrics=self.metrics,
            commands=self.disconnector,
            observe=None if traced is None else traced.observe,
        )
        self.handoff = RouterHandoff(settings=settings, handler=self.emitter)
        self.workers: InProcessWorkers | None = None
        if thread_mode:  # imported only here: boto3 and the worker's code
            from server.intake import inprocess

            self.workers = inprocess.InProcessWorkers(
                settings, counters=self.counters, tracing=self.tracing
            )
        self.metrics.track(self.metrics.connected_clients, lambda: len(self.handlers.connections))
        self.metrics.track(self.metrics.workers_connected, lambda: self.handoff.workers_connected)
        self._probe: asyncio.Task[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        self._closing_sessions: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # started here, held until they end

    def start(self) -> None:
        """Bind ZMQ_BIND (zmq.ZMQError naming it if taken), start the history, the hand-off,
        the worker threads (thread mode) and the event-loop lag probe. In the running loop."""
        self.handoff.bind()
        self.history.start(self.sender.send, on_gap=self.close_sessions_now)
        self.control.on("presence", self.presence.announce)
        self.control.start()
        self.presence.start(lambda notice: self.control.publish("presence", notice))
        self.presence_events.start()
        self.handoff.start()
        if self.workers is not None:
            self.workers.start()
        self._probe = asyncio.create_task(self.metrics.probe_loop_lag(), name="loop-lag-probe")

    async def drain(self, deadline: float) -> None:
        """Stop consuming by `deadline` (a `time.monotonic()` instant). Idempotent: the first
        call's deadline holds for every later one (the server process drains before uvicorn
        closes client connections, and the lifespan's close() would again)."""
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(deadline), name="drain")
        await self._draining

    async def _drain(self, deadline: float) -> None:
        if self.workers is not None:
            await self.workers.close(deadline - StopDeadline.HANDOFF_CLOSE_S)
        await self.handoff.close(deadline)

    def close_sessions(self) -> None:
        """Start closing every Engine.IO session, after :meth:`drain`. Each client gets
        Engine.IO's close packet, which socket.io clients answer by reconnecting (here once
        the server is back, or elsewhere), and a long-polling client's open request returns
        with it instead of holding uvicorn's graceful shutdown until the stop's deadline.

        Not awaited: Engine.IO then waits for each close packet to be fetched, which a
        long-polling client that went away never does. uvicorn's graceful shutdown, next, is
        what waits, within the deadline."""
        sessions = self.sio.session_count()
        if sessions and self._closing_sessions is None:  # disconnect() of none raises
            logger.info("Closing %d client session(s)", sessions)
            self._closing_sessions = asyncio.create_task(
                self.sio.close_all_sessions(), name="close-sessions"
            )

    def close_sessions_now(self) -> None:
        """Send every client away to reconnect and resume (the history's on_gap: in cluster
        mode, this server missed part of the shared feed, which the history has)."""
        sessions = self.sio.session_count()
        if sessions:
            logger.info("Closing %d client session(s) so that they resume", sessions)
            task = asyncio.create_task(self.sio.close_all_sessions(), name="resume-sessions")
            # held until done: the loop keeps only a weak reference to a task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """The last step: drain (if the stop did not already) and stop the probe. Under an
        ASGI server other than ours this is where the stop starts."""
        await self.drain(StopDeadline(self.settings.shutdown_timeout_s).start())
        if self._probe is not None:
            self._probe.cancel()
        await self.history.close()
        await self.presence_events.close()  # before the store it sends from closes
        await self.presence.close()
        await self.control.close()
        await self.revocations.close()
        if self.admin is not None:
            self.admin.close()
        if self.tracing is not None:
            # Blocking, bounded: the spans batched since the last export (OTEL_BSP_*).
            await asyncio.to_thread(self.tracing.close, StopDeadline.EXIT_S)
        summary = (*_SUMMARY, *self.history.summary_counters)
        logger.info("Relay stopped: %s", self.counters.summary(summary))


# The mode's parts: the one place that knows the mode. Each Redis-backed one is imported only
# in cluster mode, so that a single server loads no Redis client (server/adapters/imports.py
# keeps python-socketio's out too).
def _control(settings: Settings, counters: Counters) -> tuple[ControlBus, Revocations]:
    """The control bus (every server acts on what one publishes) and the revocations of
    backend disconnect commands: in Redis in cluster mode, in this process otherwise."""
    if settings.cluster:
        from server.control.redis_bus import RedisControlBus
        from server.control.redis_revocations import RedisRevocations

        return (
            RedisControlBus(settings, counters=counters),
            RedisRevocations(settings, counters=counters),
        )
    revocations = LocalRevocations(window_s=settings.disconnect_revoke_s, counters=counters)
    return LocalControlBus(), revocations


def _history(settings: Settings, replay: ReplayBuffer, counters: Counters) -> History:
    """Cluster mode: the history is shared in Redis (server/history/redis_history.py), and
    the replay buffer holds what this server's feed reader emitted, for resumes."""
    if settings.cluster:
        from server.history.redis_history import RedisHistory

        return RedisHistory(settings, replay=replay, counters=counters)
    return LocalHistory(
        replay,
        counters=counters,
        state_rooms=tuple(settings.state_rooms),
        state=LocalState(
            max_keys=settings.state_max_keys,
            max_bytes=settings.state_max_bytes,
            max_total_bytes=settings.replay_max_bytes,
        ),
    )


def _presence_store(settings: Settings) -> PresenceStore:
    """Presence's counts: in Redis in cluster mode, in this process (and SQLite) otherwise."""
    if settings.redis_url is not None:
        from server.presence.redis_store import RedisPresence

        return RedisPresence(
            redis_url=settings.redis_url,
            prefix=settings.redis_prefix,
            grace_s=settings.presence_grace_s,
            lease_s=settings.presence_lease_s,
            events=settings.presence_events,
            outbox_max=settings.presence_outbox_max,
        )
    return LocalPresence(
        grace_s=settings.presence_grace_s,
        events=settings.presence_events,
        outbox_max=settings.presence_outbox_max,
        state_file=settings.presence_state_file,
    )
