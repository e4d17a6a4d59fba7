"""Every outcome the relay counts, in one place per process.

The worker and the server each keep one :class:`Counters`; a `/metrics` endpoint reads
:meth:`Counters.snapshot`, and each process logs :meth:`Counters.summary` when it stops.
"""

from __future__ import annotations

import threading
from collections import Counter

RECEIVED = "received"  # worker: taken off SQS
DELIVERED = "delivered"  # worker: confirmed by every server and deleted
DEAD_LETTERED = "dead_lettered"  # worker: moved to the dead-letter queue, by reason
RETURNED = "returned"  # worker: made visible again (not confirmed in time)
RETURNED_ON_SHUTDOWN = "returned_on_shutdown"  # worker: handed back while stopping
EMITTED = "emitted"  # server: emitted to clients
DUPLICATE_DROPPED = "duplicate_dropped"  # server: a MessageId it had already emitted
EMIT_FAILED = "emit_failed"  # server: emit raised; not confirmed, SQS redelivers
REPLAYED = "replayed"  # server: events re-sent to a reconnecting client
RECOVERY_FAILED = "recovery_failed"  # server: a client's offset was out of the window
CONNECT_REFUSED = "connect_refused"  # server: a client's token was refused
JOIN_REFUSED = "join_refused"  # server: a room the client's token does not allow
CLIENT_EVENT_RELAYED = "client_event_relayed"  # server: a client event passed on
CLIENT_EVENT_REFUSED = "client_event_refused"  # server: not allowed, too big, or over the rate

NAMES = (
    RECEIVED,
    DELIVERED,
    DEAD_LETTERED,
    RETURNED,
    RETURNED_ON_SHUTDOWN,
    EMITTED,
    DUPLICATE_DROPPED,
    EMIT_FAILED,
    REPLAYED,
    RECOVERY_FAILED,
    CONNECT_REFUSED,
    JOIN_REFUSED,
    CLIENT_EVENT_RELAYED,
    CLIENT_EVENT_REFUSED,
)


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
