"""What the worker's SQS calls are going through: counted per failed attempt, logged once
per outage, and read by the worker's /readyz.

botocore retries a throttled, failed or timed-out call by itself ("standard" mode, 3
attempts, shared/sqs.py) and the worker loop backs off between calls that still fail, so an
exception reaches the worker only after the last attempt, and only for some calls. botocore's
`needs-retry` event comes after every attempt, with its answer or its exception: this module
listens there, so that every attempt is seen, whoever made the call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from shared import counters as c
from shared.counters import Counters

logger = logging.getLogger(__name__)

#: `sqs_errors{reason}`'s reasons, and how /readyz words each.
REASONS = {
    "throttled": "throttled",
    "server_error": "answered 5xx",
    "timeout": "timed out",
    "connection": "lost its connection",
    "client_error": "refused",
}
_THROTTLING_CODES = frozenset(
    {"RequestThrottled", "ThrottlingException", "Throttling", "RequestThrottledException"}
)


def classify(response: Any, caught_exception: Exception | None) -> tuple[str, str] | None:
    """The reason (a key of `REASONS`) and detail of one failed attempt; None if it
    succeeded. `response` is botocore's `(http_response, parsed)` or None."""
    if caught_exception is not None:
        if isinstance(caught_exception, ReadTimeoutError | ConnectTimeoutError):
            return "timeout", str(caught_exception)
        if isinstance(caught_exception, ConnectionClosedError | EndpointConnectionError):
            return "connection", str(caught_exception)
        return "connection", f"{type(caught_exception).__name__}: {caught_exception}"
    if response is None:
        return None
    http, parsed = response
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    status = getattr(http, "status_code", 200)
    if not error and status < 400:
        return None
    code = (error or {}).get("Code", str(status))
    detail = f"{code}: {(error or {}).get('Message', '')}".rstrip(": ")
    if code in _THROTTLING_CODES:
        return "throttled", detail
    if status >= 500:
        return "server_error", detail
    return "client_error", detail


class SqsHealth:
    """Follows a boto3 SQS client's attempts: `sqs_errors{reason}` per failed one, a warning
    at an outage's first, a line when SQS answers again, and `problem()` for /readyz.

    Used as::

        health = SqsHealth(counters)
        health.install(sqs)          # before the client's first call
        health.problem()             # None, or "SQS: ReceiveMessage throttled for 12 s"
    """

    def __init__(self, counters: Counters, clock: Any = time.monotonic) -> None:
        self._counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self._answered = False  # any attempt succeeded yet
        self._since: float | None = None  # the outage's first failed attempt
        self._last: tuple[str, str, str] | None = None  # operation, reason, detail
        self._failed: Counter[str] = Counter()  # this outage's failed attempts, by reason

    def install(self, sqs: Any) -> bool:
        """Listen to `sqs`'s attempts; False for a client that is not botocore's (a fake)."""
        events = getattr(getattr(sqs, "meta", None), "events", None)
        if events is None:
            return False
        events.register("needs-retry.sqs", self._on_attempt)
        return True

    def _on_attempt(
        self,
        response: Any = None,
        caught_exception: Exception | None = None,
        operation: Any = None,
        **_: Any,
    ) -> None:
        name = getattr(operation, "name", "SQS call")
        failure = classify(response, caught_exception)
        if failure is None:
            self.succeeded()
        else:
            self.failed(name, *failure)
        # None: botocore's own retry handler decides whether to retry.

    def succeeded(self) -> None:
        with self._lock:
            self._answered = True
            since, failed = self._since, self._failed
            self._since, self._last, self._failed = None, None, Counter()
        if since is not None:
            logger.info(
                "SQS answers again after %.1f s of failures (%d failed call(s): %s)",
                self._clock() - since,
                sum(failed.values()),
                ", ".join(f"{reason}={n}" for reason, n in sorted(failed.items())),
            )

    def failed(self, operation: str, reason: str, detail: str) -> None:
        self._counters.inc(c.SQS_ERRORS, reason=reason)
        with self._lock:
            first = self._since is None
            if first:
                self._since = self._clock()
            self._last = (operation, reason, detail)
            self._failed[reason] += 1
        if first:
            logger.warning(
                "SQS %s %s (%s); retrying with backoff, and logging again when SQS answers",
                operation,
                REASONS.get(reason, reason),
                detail,
            )

    def problem(self) -> str | None:
        """What is wrong with SQS for /readyz, or None while the last attempt succeeded."""
        with self._lock:
            if self._since is None or self._last is None:
                return None if self._answered else "SQS: no call answered yet"
            operation, reason, _detail = self._last
            seconds = self._clock() - self._since
        return f"SQS: {operation} {REASONS.get(reason, reason)} for {seconds:.0f} s"
