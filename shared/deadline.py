"""One deadline for a process's whole stop, and the slices of it each step leaves to the next.

Both processes stop the same way: the first SIGTERM/SIGINT fixes the deadline,
SHUTDOWN_TIMEOUT_S from the signal less :attr:`StopDeadline.EXIT_S` for leaving, and every
step of the stop (the batch in hand, deleting or returning it, closing sessions and
connections) shares it instead of having a timeout of its own. honcho sends SIGKILL 5 s after
its SIGTERM; the default 4 s keeps every process inside that.

Usage::

    deadline = StopDeadline(settings.shutdown_timeout_s)
    at = deadline.start()        # on the signal: a time.monotonic() instant, fixed once
    deadline.remaining()         # seconds left, 0 when past it (None before start)
    at - StopDeadline.AFTER_ACK_S  # when a worker stops waiting for a confirmation
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class StopDeadline:
    """One stop's deadline, fixed by the first :meth:`start` (or, given `stop`, the first
    look after `stop` is set) and the same for every step after it."""

    #: Kept for after the last step: cancelling what is left, closing the event loop and the
    #: ZeroMQ context (the interpreter's own teardown is skipped).
    EXIT_S = 0.5
    #: Worker: what waiting for a confirmation leaves to deleting or returning the batch.
    AFTER_ACK_S = 1.0
    #: Worker: the longest it waits for a confirmation once stopping (a server that is itself
    #: stopping answers at once or not at all); the batch goes back to the queue after it.
    STOPPING_ACK_GRACE_S = 1.0
    #: Worker: on a busy queue (its last receive brought messages), how long an open long poll
    #: may take to answer by itself before it is cut off. There it answers within
    #: milliseconds, and its messages go back to the queue at once; cut off, what SQS handed
    #: it stays invisible for the visibility timeout. An idle queue's poll is cut at once.
    POLL_GRACE_S = 1.0
    #: Server in thread mode: what stopping the worker threads leaves to closing the hand-off.
    HANDOFF_CLOSE_S = 0.3

    def __init__(
        self,
        budget_s: float,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._budget_s = budget_s
        self._stop = stop
        self._clock = clock
        self._at: float | None = None
        # Re-entrant: a signal handler may start the stop while this thread is inside start().
        self._lock = threading.RLock()

    def start(self) -> float:
        """Fix the deadline now, unless it is fixed already; return it."""
        with self._lock:
            if self._at is None:
                self._at = self._clock() + self._budget_s - self.EXIT_S
            return self._at

    def at(self) -> float | None:
        """The `time.monotonic()` instant by which the stop must be done; None while not
        stopping (with `stop`: the first call after it is set fixes it)."""
        if self._at is None and self._stop is not None and self._stop.is_set():
            return self.start()
        return self._at

    def remaining(self) -> float | None:
        """Seconds left (0 when past it); None while not stopping."""
        at = self.at()
        return None if at is None else max(0.0, at - self._clock())
