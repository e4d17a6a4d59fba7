"""A bounded, time-based memory of what was emitted, to drop SQS redeliveries."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RecentIds:
    """Keys seen in the last `window_s` seconds, at most `max_ids` of them. O(1) add and lookup.

    The relay keys it by (MessageId, room), so that a message emitted to some of its rooms and
    then redelivered goes only to the rooms that missed it.

    Time, not a count, is what matters: a redelivery comes at the latest one visibility timeout
    after the receive that did not finish, whatever the message rate. The window grows to the
    largest visibility timeout a worker reports (:meth:`cover`). `max_ids` bounds memory; past
    it the oldest keys are forgotten early and counted in :attr:`forgotten_early`, and a
    redelivery of one of those is emitted again (clients de-duplicate by ``id``).

    An OrderedDict is the whole implementation: no library offers a bounded, timed set, and
    insertion order is expiry order because every key gets the same window.
    """

    def __init__(
        self, *, window_s: float, max_ids: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_ids < 1 or window_s <= 0:
            raise ValueError("window_s and max_ids must be positive")
        self.window_s = window_s
        self._max_ids = max_ids
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        self.forgotten_early = 0

    def __contains__(self, key: object) -> bool:
        self._expire()
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: Hashable) -> None:
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        self._expire()
        while len(self._seen) > self._max_ids:
            self._seen.popitem(last=False)
            self.forgotten_early += 1

    def cover(self, window_s: float) -> bool:
        """Make the window at least `window_s`; True if it grew."""
        if window_s <= self.window_s:
            return False
        self.window_s = window_s
        return True

    def _expire(self) -> None:
        horizon = self._clock() - self.window_s
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if at >= horizon:
                break
            del self._seen[key]
