"""A client's outgoing queue, bounded (server/outgoing/queue.py)."""

from __future__ import annotations

import asyncio

from engineio import packet

from server.adapters.frame_websocket import text_frame
from server.outgoing.queue import PACKET_OVERHEAD_BYTES, OutgoingQueue


def message(size: int) -> packet.Packet:
    return packet.Packet(packet.MESSAGE, data="x" * size)


async def test_past_a_bound_it_empties_itself_once_and_takes_only_the_notice() -> None:
    # Given a queue of 1,000 bytes holding two packets
    overflows: list[OutgoingQueue] = []
    queue = OutgoingQueue(
        max_packets=100, max_bytes=1000, on_overflow=overflows.append, frame_of=text_frame
    )
    for _ in range(2):
        await queue.put(message(300))
    assert queue.bytes == 2 * (300 + PACKET_OVERHEAD_BYTES)
    # When a third would pass the bound, and more come after it
    await queue.put(message(300))
    await queue.put(message(10))
    # Then it is empty, said so once, and takes the notice and engine.io's end marker only
    assert queue.empty() and queue.bytes == 0 and overflows == [queue]
    queue.put_notice(message(50))
    await queue.put(None)
    assert [queue.get_nowait().data, queue.get_nowait()] == ["x" * 50, None]
    for _ in range(2):
        queue.task_done()
    await asyncio.wait_for(queue.join(), 1)  # every dropped packet was marked done


async def test_the_packet_count_is_bounded_too() -> None:
    overflows: list[OutgoingQueue] = []
    queue = OutgoingQueue(
        max_packets=10, max_bytes=1 << 20, on_overflow=overflows.append, frame_of=text_frame
    )
    for _ in range(11):
        await queue.put(message(1))
    assert overflows == [queue] and queue.empty()


async def test_what_is_taken_out_makes_room_again() -> None:
    overflows: list[OutgoingQueue] = []
    queue = OutgoingQueue(
        max_packets=2, max_bytes=1 << 20, on_overflow=overflows.append, frame_of=text_frame
    )
    for _ in range(10):
        await queue.put(message(5))
        assert (await queue.get()).data == "xxxxx"
        queue.task_done()
    assert overflows == [] and queue.bytes == 0
