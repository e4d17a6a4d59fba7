"""The fan-out: one encode and one frame per event, written straight to idle websocket
clients, in the order the queue would have kept (server/adapters/fanout.py,
server/outgoing/queue.py)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import socketio
from engineio import packet
from socketio import packet as sio_packet
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.adapters.fanout import FanoutManager
from server.adapters.frame_websocket import text_frame
from server.outgoing.queue import OutgoingQueue


def message(data: str) -> packet.Packet:
    return packet.Packet(packet.MESSAGE, data=data)


def parse(frame: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(frame)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("incomplete frame")


def test_a_frame_is_one_unmasked_text_frame_of_the_engineio_packet_made_once() -> None:
    for size in (5, 200, 70_000):  # 7-bit, 16-bit and 64-bit payload lengths
        pkt = message("x" * size)
        frame = parse(text_frame(pkt))
        assert (frame.opcode, frame.fin, frame.rsv1) == (Opcode.TEXT, True, False)
        assert frame.data == ("4" + "x" * size).encode()
        assert text_frame(pkt) is text_frame(pkt)  # kept on the packet


@dataclass
class Writer:
    takes: bool = True
    frames: list[bytes] = field(default_factory=list)

    def write_frame(self, frame: bytes) -> bool:
        if self.takes:
            self.frames.append(frame)
        return self.takes


def attached(writer: Writer) -> OutgoingQueue:
    queue = OutgoingQueue(
        max_packets=100, max_bytes=1 << 20, on_overflow=lambda _q: None, frame_of=text_frame
    )
    queue.attach_writer(writer)
    return queue


async def reader_waiting(queue: OutgoingQueue) -> asyncio.Task[Any]:
    task = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # it runs up to its wait
    return task


async def test_with_nothing_queued_and_the_writer_waiting_a_packet_is_written_at_once() -> None:
    writer = Writer()
    queue = attached(writer)
    getter = await reader_waiting(queue)
    queue.put_nowait(message("a"))
    assert writer.frames == [text_frame(message("a"))] and queue.empty()
    assert not getter.done()  # the writer task was not woken for it
    getter.cancel()


async def test_a_packet_waits_in_the_queue_whenever_writing_it_now_could_reorder() -> None:
    # Given a writer task busy sending (not waiting in get): everything is queued, in order
    writer = Writer()
    queue = attached(writer)
    for data in ("a", "b"):
        queue.put_nowait(message(data))
    assert writer.frames == [] and [queue.get_nowait().data for _ in range(2)] == ["a", "b"]
    # And a writer task waiting, woken for a packet it has not taken yet: the next one
    # queues behind it, though the connection would take it now
    getter = await reader_waiting(queue)
    writer.takes = False
    queue.put_nowait(message("c"))
    writer.takes = True
    queue.put_nowait(message("d"))
    assert writer.frames == []
    assert (await getter).data == "c" and queue.get_nowait().data == "d"


async def test_a_ping_is_written_at_once_like_an_event() -> None:
    # the socket's writer waits without a timeout (server/adapters/transport.py): a PING need not
    # wake it
    writer = Writer()
    queue = attached(writer)
    getter = await reader_waiting(queue)
    queue.put_nowait(packet.Packet(packet.PING))
    assert writer.frames == [b"\x81\x012"] and not getter.done()
    getter.cancel()


async def test_no_direct_write_over_a_full_transport_or_for_binary() -> None:
    cases = [
        (Writer(takes=False), message("a")),  # the transport is over its mark
        (Writer(), packet.Packet(packet.MESSAGE, data=b"\x01")),
    ]
    for writer, pkt in cases:
        queue = attached(writer)
        getter = await reader_waiting(queue)
        queue.put_nowait(pkt)
        assert writer.frames == [] and (await getter) is pkt


async def test_a_detached_queue_is_engineios_queue_again() -> None:
    writer = Writer()
    queue = attached(writer)
    queue.attach_writer(None)
    getter = await reader_waiting(queue)
    queue.put_nowait(message("a"))
    assert writer.frames == [] and (await getter).data == "a"


class FakeEngineIO:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.generate_id = iter(["s0", "s1", "s2"]).__next__

    def send_packet_now(self, sid: str, pkt: Any, now: float) -> None:
        self.sent.append((sid, pkt))


class FakeServer:
    def __init__(self) -> None:
        self.eio = FakeEngineIO()
        self.packet_class = sio_packet.Packet


async def test_an_emit_encodes_once_and_hands_every_recipient_the_same_packet() -> None:
    manager = FanoutManager()
    manager.set_server(FakeServer())
    manager.initialize()
    sids = [await manager.pre_connect(f"eio{n}", "/") for n in range(3)]
    for sid in sids:
        await manager.connect(sid, "/")
    await manager.emit("e", {"n": 1}, "/", skip_sid=sids[2])
    sent = manager.server.eio.sent
    assert sorted(sid for sid, _ in sent) == ["eio0", "eio1"]
    assert sent[0][1] is sent[1][1] and sent[0][1].encode() == '42["e",{"n":1}]'


async def test_rooms_per_client_match_what_stock_python_socketio_keeps() -> None:
    # Given the same random connects, joins, leaves, closes and disconnects on both managers
    rng = random.Random(7)
    managers = [FanoutManager(), socketio.AsyncManager()]
    for manager in managers:
        manager.set_server(FakeServer())
        manager.server.eio.generate_id = iter(f"s{n}" for n in range(10_000)).__next__
        manager.initialize()
    connected: list[tuple[str, str]] = []
    for step in range(2_000):
        op = rng.random()
        namespace = rng.choice(["/", "/admin"])
        if op < 0.3 or not connected:
            for manager in managers:
                sid = await manager.pre_connect(f"eio{step}", namespace)
                await manager.connect(sid, namespace)
            connected.append((sid, namespace))
        elif op < 0.6:
            sid, ns = rng.choice(connected)
            room = rng.choice("abcde")
            for manager in managers:
                await manager.enter_room(sid, ns, room)
        elif op < 0.75:
            sid, ns = rng.choice(connected)
            room = rng.choice("abcde")
            for manager in managers:
                await manager.leave_room(sid, ns, room)
        elif op < 0.8:
            ns, room = rng.choice(["/", "/admin"]), rng.choice("abcde")
            for manager in managers:
                await manager.close_room(room, ns)
        else:
            sid, ns = connected.pop(rng.randrange(len(connected)))
            for manager in managers:
                await manager.disconnect(sid, ns)
        # Then the room tables are the same, and so are the rooms each client is in
        ours, stock = managers
        assert ours.rooms == stock.rooms
    for sid, ns in connected:
        assert sorted(map(str, ours.get_rooms(sid, ns))) == sorted(
            map(str, stock.get_rooms(sid, ns))
        )
