"""Ending a blocking boto3 long poll from another thread.

boto3 cannot cancel a call in flight, so a worker that is told to stop would otherwise sit
in its 20-second ReceiveMessage. :class:`LongPoll` knows which pooled connection the poll is
using and shuts its socket down (the stop's one deadline is shared/deadline.py's).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from worker.adapters.botocore_pools import connection_socket, pool_classes, wrap_connections


class PollEnded(Exception):
    """Raised out of the ReceiveMessage call that :meth:`LongPoll.end_now` cut off."""


class LongPoll:
    """Lets another thread end the ReceiveMessage a boto3 client has open, at once.

    boto3 cannot cancel a call (boto/boto3#3861 was closed without a way), and `client.close()`
    does not end it either: it closes only the *idle* connections of urllib3's pool, not the
    one a request has checked out, so the poll still runs its full wait after close().
    What ends it is `shutdown(SHUT_RDWR)` on that connection's socket: the POSIX way to wake a
    thread blocked in recv() on it. (`close()` from another thread is not: on Linux it wakes
    nobody and frees the descriptor's number for reuse while the reader still holds it.)
    urllib3 does the same in `HTTPResponse.shutdown()`, which cannot help here, as a long poll
    blocks before its response exists. So :meth:`install` gives the client's pools a
    connection class that tells this object which connections the poll uses, and vetoes, from
    botocore's own `needs-retry` event, the retry botocore would make of the broken call.

    The cost: SQS may already have taken messages for the poll cut off; they stay invisible
    until the visibility timeout. The worker counts such polls (`abandoned_polls`), and on a
    busy queue first gives the poll a moment to answer by itself (:meth:`wait_closed`): there it
    answers within milliseconds, and what it brings goes back to the queue at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = threading.Condition(self._lock)
        self._open = False
        self._ended = False
        self._connections: list[Any] = []

    @classmethod
    def install(cls, sqs: Any) -> LongPoll | None:
        """Hook into a boto3 client before its first call; None for a client that is not
        botocore's (a test fake): its polls then simply run their course."""
        pools = pool_classes(sqs)
        if pools is None:
            return None
        poll = cls()
        # The dict is shared with any proxy managers: swapping in place covers them too.
        wrap_connections(pools, lambda connection_class: _tracked(connection_class, poll))
        sqs.close()  # pools made before now (none, on a new client) would keep the old class
        sqs.meta.events.register_first("needs-retry.sqs.ReceiveMessage", poll._no_retry)
        return poll

    def begin(self) -> bool:
        """Mark a poll open; False once :meth:`end_now` was called (stopping: do not poll)."""
        with self._lock:
            if self._ended:
                return False
            self._open = True
            return True

    def end(self) -> bool:
        """Mark the poll closed; True if :meth:`end_now` cut it off."""
        with self._lock:
            self._open = False
            self._connections.clear()
            self._closed.notify_all()
            return self._ended

    def wait_closed(self, timeout_s: float) -> bool:
        """From any thread: wait up to `timeout_s` for the open poll (if any) to answer by
        itself; True if none is open now."""
        with self._lock:
            return self._closed.wait_for(lambda: not self._open, timeout_s)

    def end_now(self) -> bool:
        """From any thread: end the open poll, and refuse later ones. True if one was open."""
        with self._lock:
            self._ended = True
            was_open = self._open
            connections = list(self._connections)
        for connection in connections:
            _shut_down(connection)
        return was_open

    def _using(self, connection: Any) -> None:
        # Called by the poll's own thread as it sends on, or connects, a connection.
        with self._lock:
            if not self._open:
                return
            self._connections.append(connection)
            ended = self._ended
        if ended:  # end_now() came between begin() and this connection's first byte
            _shut_down(connection)

    def _no_retry(self, caught_exception: Exception | None = None, **_: Any) -> None:
        with self._lock:
            cut_off = self._open and self._ended
        if cut_off and caught_exception is not None:
            raise PollEnded("long poll ended by shutdown") from caught_exception


def _tracked(connection_class: Any, poll: LongPoll) -> Any:
    class Tracked(connection_class):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            poll._using(self)

        def request(self, *args: Any, **kwargs: Any) -> Any:
            poll._using(self)
            return super().request(*args, **kwargs)

    Tracked.__name__ = Tracked.__qualname__ = f"LongPoll{connection_class.__name__}"
    return Tracked


def _shut_down(connection: Any) -> None:
    sock = connection_socket(connection)
    if sock is not None:
        # socket.socket's own shutdown, also for an SSLSocket: its override would drop the TLS
        # state under the reading thread's feet; this just ends the TCP stream. OSError: the
        # socket is closed already, nothing left to end.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
