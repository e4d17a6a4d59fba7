"""What the server refuses a hostile connection, counted once per refusal and logged at most
once per address per interval (docs/security.md, "Hostile connections").

A refusal may come thousands of times a second (a flood of connects, half-open connections
timing out together): each is counted, and the log says the first from an address, then at
most one line per address and interval with how many more there were, so that an attack
cannot fill the log or hold the event loop writing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.counters import Counters

logger = logging.getLogger("server.refusals")

#: At most one log line per (counter, address) in this many seconds.
LOG_INTERVAL_S = 60.0
#: Addresses remembered for the log's interval; past it the oldest are forgotten (a flood
#: from many addresses logs more, but its memory stays bounded).
MAX_ADDRESSES = 10_000


class Refusals:
    """Count each refusal, log it once per address per interval.

    Usage::

        refusals = Refusals(counters)
        refusals.refuse(c.HEADER_TIMEOUTS, "203.0.113.9", "closed a connection that sent no "
                        "request headers within 30 s (CLIENT_HEADER_TIMEOUT_S)")
    """

    def __init__(
        self,
        counters: Counters,
        *,
        interval_s: float = LOG_INTERVAL_S,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counters = counters
        self._interval_s = interval_s
        self._max_addresses = max_addresses
        self._clock = clock
        #: (counter, address) -> [when its last line was logged, refusals since not logged]
        self._logged: dict[tuple[str, str], list[float]] = {}

    def refuse(self, counter: str, address: str, what: str) -> None:
        """Count one refusal under `counter`; log `what` (a sentence without the address) if
        nothing was logged for this counter and address in the interval."""
        self._counters.inc(counter)
        key, now = (counter, address), self._clock()
        entry = self._logged.get(key)
        if entry is not None and now - entry[0] < self._interval_s:
            entry[1] += 1
            return
        more = int(entry[1]) if entry is not None else 0
        self._logged.pop(key, None)  # to the end: the oldest entries are first
        self._logged[key] = [now, 0]
        while len(self._logged) > self._max_addresses:
            del self._logged[next(iter(self._logged))]
        logger.warning(
            "%s: %s (%d more from it since its last line; counted in %s; logged at most once "
            "in %.0f s per address)",
            address,
            what,
            more,
            counter,
            self._interval_s,
        )


def address_of(client: object) -> str:
    """The address part of an ASGI or uvicorn `client` (host, port); "unknown" without one."""
    if isinstance(client, (tuple, list)) and client:
        return str(client[0])
    return "unknown"
