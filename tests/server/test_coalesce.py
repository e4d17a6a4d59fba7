"""A connection's frames of one pass of the event loop go out in one write
(server/outgoing/coalesce.py), in order, and never wait behind more than `max_held`."""

from __future__ import annotations

import asyncio

from server.outgoing.coalesce import FrameCoalescer


class Connection:
    """What the coalescer sees of a connection: it keeps frames, and writes them in one call."""

    def __init__(self, name: str, writes: list[tuple[str, list[bytes]]]) -> None:
        self.name = name
        self.kept: list[bytes] | None = None
        self.writes = writes

    def hold_frame(self, frame: bytes) -> bool:
        first = self.kept is None
        self.kept = [*(self.kept or []), frame]
        return first

    def write_held(self) -> None:
        if self.kept is not None:
            self.writes.append((self.name, self.kept))
            self.kept = None


async def test_frames_held_in_one_pass_are_written_together_at_the_next() -> None:
    loop = asyncio.get_running_loop()
    writes: list[tuple[str, list[bytes]]] = []
    a, b = Connection("a", writes), Connection("b", writes)
    coalescer = FrameCoalescer()
    # Given three events for a and two for b in one stretch of the loop
    for frame in (b"1", b"2", b"3"):
        coalescer.hold(a, frame, loop)
        if frame != b"3":
            coalescer.hold(b, frame, loop)
    # Then nothing is written during the stretch
    assert writes == []
    # and at the loop's next pass each connection gets one write, its frames in order
    await asyncio.sleep(0)
    assert writes == [("a", [b"1", b"2", b"3"]), ("b", [b"1", b"2"])]
    # and the next stretch starts over
    coalescer.hold(b, b"4", loop)
    await asyncio.sleep(0)
    assert writes[-1] == ("b", [b"4"])


async def test_past_max_held_frames_everything_held_is_written_at_once() -> None:
    loop = asyncio.get_running_loop()
    writes: list[tuple[str, list[bytes]]] = []
    connections = [Connection(str(n), writes) for n in range(5)]
    coalescer = FrameCoalescer(max_held=3)
    # Given a broadcast to five connections in one stretch
    for connection in connections:
        coalescer.hold(connection, b"x", loop)
    # Then the first three were written when the third was held, without waiting
    assert [name for name, _ in writes] == ["0", "1", "2"]
    # and the rest at the next pass
    await asyncio.sleep(0)
    assert [name for name, _ in writes] == ["0", "1", "2", "3", "4"]


async def test_a_connection_that_wrote_its_frames_itself_is_skipped() -> None:
    loop = asyncio.get_running_loop()
    writes: list[tuple[str, list[bytes]]] = []
    a = Connection("a", writes)
    coalescer = FrameCoalescer()
    coalescer.hold(a, b"1", loop)
    # When the connection writes what it holds before something of its own (its close, say)
    a.write_held()
    writes.append(("a", [b"close"]))
    # Then the pass writes nothing more to it: nothing was written twice or after the close
    await asyncio.sleep(0)
    assert writes == [("a", [b"1"]), ("a", [b"close"])]
