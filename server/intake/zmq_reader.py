"""Receiving from a plain ZeroMQ socket in the event loop, without zmq.asyncio's futures.

zmq.asyncio makes every receive a future, with a deque entry, a done-callback, a look at
ZMQ_EVENTS through pyzmq's attribute layer before and after, and another pass of the loop to
look for more; at the hand-off's rates that was about a third of the server's Python time
(py-spy on the server at 500 msg/s, 2 workers, 5 clients). This is the part of it the hand-off
needs, written by hand for that reason: receive at once while a message is queued, and only
otherwise wait on the socket's file descriptor.

libzmq signals that descriptor when the socket's state may have changed (``ZMQ_FD``); reading
``ZMQ_EVENTS`` takes the signal and says whether a message is in. A look that finds nothing has
just taken every signal, so a message that arrives after it signals the descriptor again.
"""

from __future__ import annotations

import asyncio

import zmq

# pyzmq's constants are enum members, and `int & member` builds an enum each time: plain ints.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
NOBLOCK = int(zmq.NOBLOCK)


class SocketReader:
    """Waits for and receives multipart messages from `sock` (a plain ``zmq.Socket``, not a
    ``zmq.asyncio`` one) in the running event loop. One receiver at a time.

    Usage::

        reader = SocketReader(sock)       # in the running loop
        frames = await reader.recv_multipart()
        reader.interrupt()                # the receive waiting now raises CancelledError
        reader.close()                    # stop watching the socket (before closing it)
    """

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._fd: int = sock.getsockopt(zmq.FD)  # type: ignore[assignment]
        self._waiter: asyncio.Future[None] | None = None
        self._loop.add_reader(self._fd, self._signalled)

    def _signalled(self) -> None:
        if self._sock.closed:
            return
        # Read ZMQ_EVENTS even when nobody waits: it takes the signal, which would otherwise
        # keep the descriptor readable and this callback running every pass of the loop.
        ready = self._sock.getsockopt(_EVENTS) & _POLLIN  # type: ignore[operator]
        waiter = self._waiter
        if ready and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv_multipart(self) -> list[bytes]:
        """The next message's frames, as soon as one is queued."""
        while True:
            # ZMQ_EVENTS first: a receive that finds nothing raises zmq.Again, and making that
            # exception costs more than the look.
            if self._sock.getsockopt(_EVENTS) & _POLLIN:  # type: ignore[operator]
                try:
                    return self._sock.recv_multipart(NOBLOCK)
                except zmq.Again:
                    pass  # not a message after all (e.g. only part of one): wait
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def interrupt(self) -> None:
        """End the wait in progress, if any, with CancelledError in the receiver."""
        if self._waiter is not None:
            self._waiter.cancel()

    def close(self) -> None:
        """Stop watching the socket; call before closing it. Idempotent."""
        self.interrupt()
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
