"""A bounded memory of recently emitted MessageIds, to drop SQS redeliveries."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    """The last `capacity` ids seen, oldest forgotten first. O(1) add and lookup.

    >>> seen = RecentIds(2)
    >>> seen.add("a"); seen.add("b"); seen.add("c")
    >>> "a" in seen, "c" in seen
    (False, True)

    An OrderedDict is the whole implementation: no library offers a plain bounded set, and
    an LRU cache keyed by calls (functools) is the wrong shape.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
