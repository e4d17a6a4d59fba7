"""Every outcome the relay counts, in one place per process.

The worker and the server each keep one :class:`Counters`; a `/metrics` endpoint reads
:meth:`Counters.snapshot`, and each process logs :meth:`Counters.summary` when it stops.
"""

from __future__ import annotations

import threading
from collections import Counter

RECEIVED = "received"
DELIVERED = "delivered"
DEAD_LETTERED = "dead_lettered"
RETURNED = "returned"
RETURNED_ON_SHUTDOWN = "returned_on_shutdown"
ABANDONED_POLLS = "abandoned_polls"
SERVER_UNAVAILABLE = "server_unavailable"
EMITTED = "emitted"
DUPLICATE_DROPPED = "duplicate_dropped"
EMIT_FAILED = "emit_failed"
REPLAYED = "replayed"
RECOVERY_FAILED = "recovery_failed"
CONNECT_REFUSED = "connect_refused"
JOIN_REFUSED = "join_refused"
CLIENT_EVENT_RELAYED = "client_event_relayed"
CLIENT_EVENT_REFUSED = "client_event_refused"
DEDUP_FORGOTTEN_EARLY = "dedup_forgotten_early"
RESUME_REFUSED = "resume_refused"
SLOW_CLIENT_DISCONNECTED = "slow_client_disconnected"
APPENDED = "appended"
REDIS_ERRORS = "redis_errors"
FEED_GAPS = "feed_gaps"
DISCONNECT_COMMANDS = "disconnect_commands"
USERS_DISCONNECTED = "users_disconnected"
REVOCATIONS_DROPPED = "revocations_dropped"
PRESENCE_CHANGES = "presence_changes"
PRESENCE_ERRORS = "presence_errors"
PRESENCE_EVENTS_SENT = "presence_events_sent"
PRESENCE_EVENTS_DROPPED = "presence_events_dropped"
STATE_STALE_DROPPED = "state_stale_dropped"
SQS_ERRORS = "sqs_errors"
HEADER_TIMEOUTS = "header_timeouts"
CONNECTIONS_OVER_LIMIT = "connections_over_limit"
CONNECTS_RATE_LIMITED = "connects_rate_limited"
CLIENT_MESSAGES_TOO_BIG = "client_messages_too_big"
CLIENT_PROTOCOL_ERRORS = "client_protocol_errors"

#: Every counter and what it counts (also the help text of its Prometheus metric).
DOCS = {
    RECEIVED: "Messages the worker received from SQS.",
    DELIVERED: "Messages every server confirmed, deleted from SQS.",
    DEAD_LETTERED: "Messages moved to the dead-letter queue, by reason.",
    RETURNED: "Messages made visible again because no server confirmed them in time.",
    RETURNED_ON_SHUTDOWN: "Messages handed back to SQS while the worker stopped.",
    ABANDONED_POLLS: (
        "Long polls cut off by shutdown; each may leave up to SQS_BATCH_SIZE messages invisible "
        "until the visibility timeout."
    ),
    SERVER_UNAVAILABLE: (
        "Times a server missed ACK_TIMEOUT_S and left the delivery set until it answers again."
    ),
    EMITTED: "Messages the server emitted to clients.",
    DUPLICATE_DROPPED: "Redelivered messages the server had already emitted.",
    EMIT_FAILED: "Emits that raised; not confirmed, so SQS redelivers them.",
    REPLAYED: "Events re-sent to clients that resumed after a reconnect.",
    RECOVERY_FAILED: "Resume requests that could not be served (window, epoch).",
    CONNECT_REFUSED: "Clients refused at connect (token).",
    JOIN_REFUSED: "Room joins the client's token does not allow.",
    CLIENT_EVENT_RELAYED: "Client events relayed to other clients.",
    CLIENT_EVENT_REFUSED: "Client events refused (not allowed, too big, over the rate).",
    DEDUP_FORGOTTEN_EARLY: (
        "MessageIds forgotten before DEDUP_WINDOW_S because DEDUP_MAX_IDS was reached."
    ),
    RESUME_REFUSED: "Resume requests refused (rate, one at a time, replay byte budgets).",
    SLOW_CLIENT_DISCONNECTED: (
        "Clients disconnected because their outgoing queue passed CLIENT_QUEUE_MAX_BYTES or "
        "CLIENT_QUEUE_MAX_PACKETS (they stopped reading, or read slower than events came)."
    ),
    APPENDED: "Cluster mode: messages this server appended to the shared Redis history.",
    REDIS_ERRORS: "Cluster mode: Redis calls that failed (the batch was not confirmed).",
    FEED_GAPS: (
        "Cluster mode: times this server found it had missed part of the shared feed and "
        "sent its clients away to resume from the history."
    ),
    DISCONNECT_COMMANDS: (
        "Backend disconnect commands (relay:disconnect) this server carried out, each once."
    ),
    USERS_DISCONNECTED: (
        "Connections closed by a backend's disconnect command (one per connection: a user on "
        "two devices counts two)."
    ),
    REVOCATIONS_DROPPED: (
        "Without Redis: disconnected users forgotten before DISCONNECT_REVOKE_S because the "
        "in-memory bound was reached (their old tokens connect again)."
    ),
    PRESENCE_CHANGES: (
        "Presence: joins and leaves (kind) this server decided, of rooms and of users' online "
        "state."
    ),
    PRESENCE_ERRORS: "Presence: store calls that failed (made again).",
    PRESENCE_EVENTS_SENT: "Presence: online/offline and join/leave events SQS took.",
    PRESENCE_EVENTS_DROPPED: (
        "Presence: events dropped because the outbox was full (PRESENCE_OUTBOX_MAX); the "
        "backend sees gaps in those users' sequences."
    ),
    STATE_STALE_DROPPED: (
        "State rooms: events not emitted to a state room that held a newer version of their "
        "key (one version at most once per room; a late or repeated update)."
    ),
    HEADER_TIMEOUTS: (
        "Connections closed because they sent no complete request headers within "
        "CLIENT_HEADER_TIMEOUT_S (nothing at all, or a byte at a time)."
    ),
    CONNECTIONS_OVER_LIMIT: (
        "Connections closed as they opened because CLIENT_MAX_CONNECTIONS were open."
    ),
    CONNECTS_RATE_LIMITED: (
        "Socket.IO handshakes refused because their address passed CLIENT_CONNECT_RATE "
        "(and CLIENT_CONNECT_BURST)."
    ),
    CLIENT_MESSAGES_TOO_BIG: (
        "WebSocket connections closed (1009) because a message passed CLIENT_MESSAGE_MAX_BYTES."
    ),
    CLIENT_PROTOCOL_ERRORS: (
        "Clients disconnected for breaking the protocol: what is not an engine.io or Socket.IO "
        "packet, a binary attachment (the relay offers none), an event to a namespace they are "
        "not connected to."
    ),
    SQS_ERRORS: (
        "Worker: SQS call attempts that failed, by reason (throttled, server_error, timeout, "
        "connection, client_error); botocore retries each, the worker backs off."
    ),
}
NAMES = tuple(DOCS)
#: Counters that carry a reason label.
LABELLED = frozenset({DEAD_LETTERED, PRESENCE_CHANGES, SQS_ERRORS})
WORKER_NAMES = (
    RECEIVED,
    DELIVERED,
    DEAD_LETTERED,
    RETURNED,
    RETURNED_ON_SHUTDOWN,
    ABANDONED_POLLS,
    SERVER_UNAVAILABLE,
    SQS_ERRORS,
)
SERVER_NAMES = tuple(name for name in NAMES if name not in WORKER_NAMES)


class Counters:
    """Named counters with an optional reason label; safe to share between threads.

    >>> counters = Counters()
    >>> counters.inc(DEAD_LETTERED, reason="not_json")
    >>> counters.get(DEAD_LETTERED, "not_json"), counters.total(DEAD_LETTERED)
    (1, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[tuple[str, str]] = Counter()

    def inc(self, name: str, n: int = 1, *, reason: str = "") -> None:
        if name not in NAMES:
            raise ValueError(f"unknown counter {name!r}")
        with self._lock:
            self._values[(name, reason)] += n

    def get(self, name: str, reason: str = "") -> int:
        with self._lock:
            return self._values[(name, reason)]

    def total(self, name: str) -> int:
        with self._lock:
            return sum(v for (n, _r), v in self._values.items() if n == name)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """``{(name, reason): value}`` for every counter that moved."""
        with self._lock:
            return dict(self._values)

    def summary(self, names: tuple[str, ...] = NAMES) -> str:
        """One line for the shutdown log, e.g. ``received=12 dead_lettered[not_json]=1``."""
        values = self.snapshot()
        parts = []
        for name in names:
            moved = sorted((r, v) for (n, r), v in values.items() if n == name)
            if not moved:
                parts.append(f"{name}=0")
            parts += [f"{name}[{r}]={v}" if r else f"{name}={v}" for r, v in moved]
        return " ".join(parts)
