"""Each client's engine.io socket (server/adapters/transport.py): the heartbeat on timers, and the
websocket transport whose reader and writer wait without timeouts, on a real engine.io
server with a stand-in websocket."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import pytest
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket
from engineio.payload import Payload
from websockets.frames import Frame, Opcode

from server.adapters.engineio_server import BoundedEngineIO
from server.adapters.socketio_server import BoundedSocketServer
from server.adapters.transport import PING, POLL_MAX_PACKETS, HeartbeatSocket
from server.adapters.wsprotocol import websocket_protocol
from shared.counters import Counters


def engine(ping_interval: float = 0.1, ping_timeout: float = 0.02) -> BoundedEngineIO:
    sio = BoundedSocketServer(
        max_queue_bytes=1 << 20, max_queue_packets=100, counters=Counters(), async_mode="asgi"
    )
    eio: BoundedEngineIO = sio.eio
    eio.ping_interval, eio.ping_timeout = ping_interval, ping_timeout  # fast, for the test
    return eio


def new_socket(eio: BoundedEngineIO, sid: str = "s1") -> HeartbeatSocket:
    socket = AsyncSocket(eio, sid)
    eio.sockets[sid] = socket
    HeartbeatSocket.adopt(socket)
    assert type(socket) is HeartbeatSocket
    return socket  # type: ignore[return-value]


def reasons(eio: BoundedEngineIO) -> list[Any]:
    seen: list[Any] = []

    async def disconnect(_sid: str, reason: Any) -> None:
        seen.append(reason)

    eio.on("disconnect", disconnect)
    return seen


async def test_a_ping_is_a_timer_and_an_answer_schedules_the_next_one() -> None:
    eio = engine(ping_interval=0.6, ping_timeout=0.3)  # (the answer has 0.3 s to come)
    gone = reasons(eio)
    socket = new_socket(eio)
    tasks = asyncio.all_tasks()
    socket.schedule_ping()  # as at connect
    assert await asyncio.wait_for(socket.queue.get(), 5) is PING and socket.last_ping
    assert asyncio.all_tasks() == tasks  # no task for the heartbeat
    # an answer in time (the PONG): the next PING comes an interval later, past the
    # answered one's deadline, and the client is kept
    socket.schedule_ping()
    assert socket.last_ping is None
    assert await asyncio.wait_for(socket.queue.get(), 5) is PING
    assert not socket.closed and gone == []
    await socket.close(wait=False, abort=True)


async def test_a_pong_nobody_asked_for_schedules_nothing() -> None:
    socket = new_socket(engine())
    socket.schedule_ping()
    heartbeat = socket._heartbeat
    socket.schedule_ping()  # a second PONG before any PING
    assert socket._heartbeat is heartbeat
    await socket.close(wait=False, abort=True)
    assert heartbeat is not None and heartbeat.cancelled()  # a closed socket pings no more


async def test_a_client_that_does_not_answer_is_closed_at_its_deadline() -> None:
    eio = engine()
    gone = reasons(eio)
    socket = new_socket(eio)
    socket.schedule_ping()
    assert await asyncio.wait_for(socket.queue.get(), 5) is PING
    # no PONG: the deadline closes it with engine.io's CLOSE, and the None ends its writer
    assert (await asyncio.wait_for(socket.queue.get(), 5)).packet_type == packet.CLOSE
    assert socket.queue.get_nowait() is None
    assert socket.closed and gone == [eio.reason.PING_TIMEOUT]
    socket.last_ping = 1.0
    socket.schedule_ping()  # a PONG that comes too late
    assert socket._heartbeat is None


class Changes:
    """Set on every frame written or sent, and by the test's handlers: what the test's
    waits wake on."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def note(self) -> None:
        self.event.set()

    async def until(self, condition: Any) -> None:
        while not condition():
            self.event.clear()
            await self.event.wait()


class FrameWriter:
    def __init__(self, changes: Changes) -> None:
        self.frames: list[bytes] = []
        self.on_pong: Any = None
        self.changes = changes

    def write_frame(self, frame: bytes) -> bool:
        self.frames.append(frame)
        self.changes.note()
        return True


class WebSocket:
    """What engine.io's ASGI websocket offers the socket, fed by the test."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[Any] = []
        self.closed = asyncio.Event()
        self.changes = Changes()
        self.frame_writer = FrameWriter(self.changes)

    async def wait(self) -> Any:
        item = await self.incoming.get()
        if item is OSError:
            raise OSError("gone")
        return item

    async def send(self, data: Any) -> None:
        self.sent.append(data)
        self.changes.note()

    async def close(self) -> None:
        self.closed.set()


async def running(socket: HeartbeatSocket, ws: WebSocket) -> asyncio.Task[None]:
    task = asyncio.ensure_future(socket._websocket_handler(ws))
    for _ in range(10):
        await asyncio.sleep(0)  # a yield, not a wait for time: the handler runs up to its waits
    return task


async def test_a_websocket_client_is_served_until_its_connection_goes() -> None:
    eio = engine()
    got: list[Any] = []

    async def message(_sid: str, data: Any) -> None:
        got.append(data)
        ws.changes.note()

    eio.on("message", message)
    eio.async_handlers = False
    socket, ws = new_socket(eio), WebSocket()
    task = await running(socket, ws)
    # its queue writes to the connection, and its PONGs go to the heartbeat
    assert ws.frame_writer.on_pong == socket.schedule_ping
    socket.queue.put_nowait(packet.Packet(packet.MESSAGE, data="hi"))
    assert ws.frame_writer.frames == [b"\x81\x034hi"] and ws.sent == []
    socket.schedule_ping()  # its PING too, when it is due
    await asyncio.wait_for(ws.changes.until(lambda: len(ws.frame_writer.frames) == 2), 5)
    assert ws.frame_writer.frames[1] == b"\x81\x012"
    await ws.incoming.put("4hello")
    await ws.incoming.put("6")  # a packet type engine.io ignores from a client: ignored
    await ws.incoming.put("4again")
    await asyncio.wait_for(ws.changes.until(lambda: got == ["hello", "again"]), 5)
    # When the connection goes
    await ws.incoming.put(OSError)
    await asyncio.wait_for(task, 5)
    # Then the writer closed the websocket, the socket is closed and detached
    assert ws.closed.is_set() and socket.closed
    assert ws.frame_writer.on_pong is None


async def test_a_socket_attaches_one_frame_writer_at_a_time_and_detach_parts_it() -> None:
    socket = new_socket(engine())
    queue = socket.queue
    first, second = WebSocket(), WebSocket()
    # When a websocket is attached, its writer takes the queue's packets and the PONGs
    socket.attach(first)
    assert queue.writer is first.frame_writer
    assert first.frame_writer.on_pong == socket.schedule_ping
    # When another is attached, the first one parts
    socket.attach(second)
    assert queue.writer is second.frame_writer and first.frame_writer.on_pong is None
    assert second.frame_writer.on_pong == socket.schedule_ping
    # When detached (twice: the second is nothing), the queue and the writer part
    socket.detach()
    socket.detach()
    assert queue.writer is None and second.frame_writer.on_pong is None
    # A websocket that carries no frame writer attaches nothing
    bare = WebSocket()
    bare.frame_writer = None  # type: ignore[assignment]
    socket.attach(bare)
    assert queue.writer is None


async def test_a_socket_closed_by_anything_else_ends_its_websocket() -> None:
    # e.g. engine.io's own ping check, or a send after the deadline (abort=False: its CLOSE
    # packet, when it sends one, goes first)
    socket, ws = new_socket(engine()), WebSocket()
    socket.last_ping = None  # its PING answered: engine.io's close sends the CLOSE
    task = await running(socket, ws)
    await socket.close(wait=False, abort=False)
    await asyncio.wait_for(ws.closed.wait(), 5)  # the writer stopped and closed it
    assert ws.frame_writer.frames == [b"\x81\x011"]
    await ws.incoming.put(OSError)  # and the connection goes
    await asyncio.wait_for(task, 5)


async def test_a_client_that_sends_what_is_not_an_engineio_packet_is_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    eio = engine()
    gone = reasons(eio)
    socket, ws = new_socket(eio), WebSocket()
    task = await running(socket, ws)
    with caplog.at_level(logging.WARNING):
        await ws.incoming.put("")  # no packet type at all
        await asyncio.wait_for(task, 5)
    assert "not an engine.io packet" in caplog.text
    assert socket.closed and ws.closed.is_set() and gone == [eio.reason.TRANSPORT_CLOSE]


async def test_an_upgrade_from_long_polling_answers_the_probe_then_waits_for_upgrade() -> None:
    eio = engine()
    socket, ws = new_socket(eio), WebSocket()
    socket.connected = True  # it came over long-polling
    task = await running(socket, ws)
    assert socket.upgrading and not socket.upgraded
    await ws.incoming.put("2probe")
    await asyncio.wait_for(ws.changes.until(lambda: ws.sent == ["3probe"]), 5)
    assert socket.queue.get_nowait().packet_type == packet.NOOP  # ends the pending poll
    # an event meanwhile waits in the queue, and a second websocket for the session is
    # refused
    socket.queue.put_nowait(packet.Packet(packet.MESSAGE, data="a"))
    other = WebSocket()
    await asyncio.wait_for(socket._websocket_handler(other), 5)
    assert other.sent == [] and ws.frame_writer.frames == []
    await ws.incoming.put("5")
    # the writer starts once the upgrade is done, and sends what waited
    await asyncio.wait_for(ws.changes.until(lambda: ws.sent == ["3probe", "4a"]), 5)
    assert socket.upgraded and not socket.upgrading
    await ws.incoming.put(OSError)
    await asyncio.wait_for(task, 5)


async def test_an_upgrade_without_the_probe_leaves_the_client_on_long_polling() -> None:
    socket, ws = new_socket(engine()), WebSocket()
    socket.connected = True
    task = await running(socket, ws)
    await ws.incoming.put("2")  # a PING, but not the probe
    await asyncio.wait_for(task, 5)
    assert not socket.upgraded and not socket.upgrading and not socket.closed
    # and one that answered the probe but sent no UPGRADE
    ws = WebSocket()
    task = await running(socket, ws)
    await ws.incoming.put("2probe")
    await ws.incoming.put("6")
    await asyncio.wait_for(task, 5)
    assert ws.sent == ["3probe"] and not socket.upgraded and not socket.upgrading
    assert not socket.closed


class Transport:
    def pause_reading(self) -> None:
        pass


def test_the_protocol_hands_a_pong_to_the_socket_and_everything_else_to_the_app() -> None:
    protocol: Any = object.__new__(websocket_protocol(10.0))  # only what handle_text uses
    protocol.queue, protocol.frames, protocol.close_sent = asyncio.Queue(), [], False
    protocol.read_paused, protocol.transport = False, Transport()
    pongs: list[None] = []
    protocol.on_pong = lambda: pongs.append(None)
    protocol.handle_text(Frame(Opcode.TEXT, b"3"))
    assert pongs == [None] and protocol.queue.empty()
    protocol.handle_text(Frame(Opcode.TEXT, b'42["e"]'))
    assert protocol.queue.get_nowait() == {"type": "websocket.receive", "text": '42["e"]'}
    protocol.on_pong = None  # no socket that takes them: a PONG goes to the app as before
    protocol.handle_text(Frame(Opcode.TEXT, b"3"))
    assert protocol.queue.get_nowait()["text"] == "3" and pongs == [None]


class ResettableTransport(Transport):
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def test_a_reset_is_a_tcp_reset_not_a_close() -> None:
    # uvicorn's close waits for the transport to flush what it holds (for ever, for a client
    # that stopped reading) and tells the app nothing; a reset drops it now, and
    # connection_lost() then tells the app
    protocol: Any = object.__new__(websocket_protocol(10.0))
    protocol.close_sent, protocol.transport = False, ResettableTransport()
    protocol.close_timer, protocol.client = None, ("127.0.0.1", 1)
    protocol.reset()
    assert protocol.transport.aborted
    linger = protocol.transport.sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.calcsize("ii")
    )
    assert struct.unpack("ii", linger) == (1, 0)
    protocol.transport.sock.close()


async def test_a_long_poll_answers_at_most_what_python_clients_decode() -> None:
    # Given a long-polling client with 40 packets waiting, then its transport's end
    socket = new_socket(engine(ping_interval=5, ping_timeout=5))
    for n in range(40):
        socket.queue.put_nowait(packet.Packet(packet.MESSAGE, data=f'2["e",{n}]'))
    socket.queue.put_nowait(None)
    # When it polls until the end
    answers = [await socket.poll() for _ in range(4)]
    # Then each answer holds at most the 16 packets python-engineio's client decodes, all
    # 40 in order, and then the end (an empty answer)
    assert POLL_MAX_PACKETS == Payload.max_decode_packets == 16
    assert [len(a) for a in answers] == [16, 16, 8, 0]
    sent = [p.data for a in answers for p in a]
    assert sent == [f'2["e",{n}]' for n in range(40)]
    assert Payload(packets=answers[0]).encode()  # (one answer is one payload)
    assert socket.queue.qsize() == 0 and socket.queue.bytes == 0


async def test_a_long_poll_with_nothing_to_send_ends_as_engineio_s() -> None:
    socket = new_socket(engine(ping_interval=0.05, ping_timeout=0.05))
    with pytest.raises(exceptions.QueueEmpty):
        await socket.poll()
