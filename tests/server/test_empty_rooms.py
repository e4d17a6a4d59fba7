"""A room nobody is in costs no packet encode (docs/guarantees.md, 8): the emitter asks the
manager's room table before it emits, and the event still enters the replay history."""

from __future__ import annotations

from typing import Any

from socketio import packet as sio_packet

from server.adapters.fanout import FanoutManager
from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.intake.emitter import Emitter, RoomSender
from server.metrics import ServerMetrics
from server.payload import ClientJSON
from shared.counters import Counters
from shared.envelope import Envelope
from shared.settings import load_settings
from shared.wire import Delivery


class CountingPacket(sio_packet.Packet):
    """python-socketio's packet, counting how many are encoded."""

    json = ClientJSON  # as AsyncServer(json=ClientJSON) sets it
    encoded = 0

    def encode(self) -> Any:
        CountingPacket.encoded += 1
        return super().encode()


class FakeEngineIO:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.generate_id = iter(["s0", "s1"]).__next__

    def send_packet_now(self, sid: str, pkt: Any, now: float) -> None:
        self.sent.append((sid, pkt))


class Server:
    """What the emitter and the manager need of python-socketio's AsyncServer."""

    def __init__(self) -> None:
        self.eio = FakeEngineIO()
        self.packet_class = CountingPacket
        self.manager = FanoutManager()
        self.manager.set_server(self)
        self.manager.initialize()

    async def emit(self, event: str, data: Any, to: str, namespace: str) -> None:
        await self.manager.emit(event, data, namespace, to=to)


async def test_a_room_nobody_is_in_costs_no_encode_and_still_enters_the_history() -> None:
    # Given a server with one client, in room "busy"
    server = Server()
    sid = await server.manager.pre_connect("eio0", "/")
    await server.manager.connect(sid, "/")
    await server.manager.enter_room(sid, "/", "busy")
    replay = ReplayBuffer(window_s=60, max_events=100, max_bytes=100_000)
    counters = Counters()
    metrics = ServerMetrics(counters)
    sender = RoomSender(sio=server, metrics=metrics)  # type: ignore[arg-type]
    history = LocalHistory(replay, counters=counters)
    history.start(sender.send, on_gap=lambda: None)
    emitter = Emitter(
        settings=load_settings({}),
        history=history,
        sender=sender,
        counters=counters,
        metrics=metrics,
    )
    CountingPacket.encoded = 0

    # When a message goes to a room nobody is in
    empty = Delivery("m1", Envelope("e", {"n": 1}, "empty", "/"), 1000)
    assert await emitter.emit([empty]) == ["m1"]

    # Then no packet was encoded and nothing was sent, but the event is in the room's history
    # (a client that joins later resumes it) and the message is confirmed
    assert CountingPacket.encoded == 0
    assert server.eio.sent == []
    assert replay.next_offset(("/", "empty")) == 2

    # And a message to the room with a client is encoded once and sent to it
    busy = Delivery("m2", Envelope("e", {"n": 2}, "busy", "/"), 1000)
    assert await emitter.emit([busy]) == ["m2"]
    assert CountingPacket.encoded == 1
    assert [eio_sid for eio_sid, _pkt in server.eio.sent] == ["eio0"]
