"""Our overrides of library internals are in effect on a real connection: the relay's app
under a real uvicorn (in this process, on a free loopback port) and a real python-socketio
client over websocket.

The unit tests call each override directly, and would stay green if the library stopped
calling it (a renamed `_websocket_handler`, say); the contract test checks the names; this
checks that the library really goes through them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import socketio
import uvicorn

from server.adapters.engineio_server import BoundedEngineIO
from server.adapters.fanout import FanoutManager
from server.adapters.transport import HeartbeatSocket
from server.adapters.uvicorn_server import UvicornServer
from server.adapters.wsprotocol import _WebSocketProtocol, websocket_protocol
from server.lean import LeanEvent, LeanQueue
from server.outgoing.coalesce import FrameCoalescer
from server.outgoing.queue import OutgoingQueue
from server.payload import BROADCAST_ROOM
from server.relay import Relay
from server.web.app import create_app
from shared.settings import load_settings
from tests.integration.helpers import eventually
from tests.processes import free_port


@dataclass
class Live:
    relay: Relay
    client: socketio.AsyncClient
    calls: Counter[str]
    events: list[tuple[str, Any]]
    received: list[Any]


def spy(
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    name: str,
    calls: Counter[str],
    note: Callable[..., None] | None = None,
) -> None:
    """Count the calls the library makes to `cls.name` (ours), then run it."""
    original = getattr(cls, name)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        if note is not None:
            note(*args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)


@pytest.fixture
async def live(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    calls: Counter[str] = Counter()
    events: list[tuple[str, Any]] = []
    spy(monkeypatch, UvicornServer, "capture_signals", calls)
    spy(monkeypatch, HeartbeatSocket, "_websocket_handler", calls)
    spy(monkeypatch, HeartbeatSocket, "schedule_ping", calls)
    spy(monkeypatch, HeartbeatSocket, "receive", calls, lambda pkt: events.append(("rx", pkt)))
    spy(monkeypatch, BoundedEngineIO, "_trigger_event", calls, lambda *a: events.append(a[:3]))
    spy(monkeypatch, FanoutManager, "basic_disconnect", calls)
    spy(monkeypatch, _WebSocketProtocol, "handle_text", calls)

    def frame_written(frame: bytes) -> None:
        events.append(("frame", frame))

    spy(monkeypatch, _WebSocketProtocol, "write_frame", calls, frame_written)
    original_write_held = _WebSocketProtocol.write_held

    def write_held(self: _WebSocketProtocol) -> None:
        if self._held is not None:
            events.append(("write", list(self._held)))
        original_write_held(self)

    monkeypatch.setattr(_WebSocketProtocol, "write_held", write_held)

    port = free_port()
    settings = load_settings(
        {
            "AUTH": "none",
            "ZMQ_BIND": f"tcp://127.0.0.1:{free_port()}",
            "CLIENT_PING_INTERVAL_S": "1",
            "SQS_QUEUE_URL": "http://127.0.0.1:1/123456789012/unused",
        }
    )
    relay = Relay(settings)
    config = uvicorn.Config(
        create_app(relay),
        host="127.0.0.1",
        port=port,
        ws=websocket_protocol(settings.client_write_timeout_s, coalescer=FrameCoalescer()),
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
    )
    server = UvicornServer(config, stopping=relay, shutdown_timeout_s=2.0)
    serving = asyncio.create_task(server.serve())
    received: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("hello", received.append)
    try:
        await eventually(lambda: server.started, timeout_s=10, what="uvicorn to start")
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        yield Live(relay, client, calls, events, received)
    finally:
        if client.connected:
            await client.disconnect()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_a_websocket_connection_runs_through_every_override(live: Live) -> None:
    relay, calls = live.relay, live.calls
    # Given a client connected over websocket
    await eventually(lambda: len(relay.handlers.connections) == 1, timeout_s=5, what="connect")
    assert calls["capture_signals"] == 1  # uvicorn's serve() took our signal handling
    # Then python-socketio built our engine.io server, which made the socket ours at connect
    assert type(relay.sio.eio) is BoundedEngineIO  # _engineio_server_class
    (socket,) = relay.sio.eio.sockets.values()
    assert type(socket) is HeartbeatSocket  # adopted in _trigger_event("connect")
    assert ("connect", socket.sid) in [e[:2] for e in live.events]
    # and engine.io ran our websocket transport, over our driver (_async["websocket"]), which
    # attached uvicorn's protocol (our subclass, from the ASGI scope) to the bounded queue
    assert calls["_websocket_handler"] == 1
    assert isinstance(socket.queue, OutgoingQueue)
    assert isinstance(socket.queue.writer, _WebSocketProtocol)
    # holding the lean queue and event, and no longer the handshake's request and response
    protocol = socket.queue.writer
    assert isinstance(protocol.queue, LeanQueue) and isinstance(protocol.writable, LeanEvent)
    assert protocol.request is None and protocol.response is None
    assert protocol.scope["headers"] == []  # the environ made at the connect keeps its own
    # and the manager's room index saw the client enter its rooms (basic_enter_room)
    (sid,) = (s for ns, s in relay.handlers.connections)
    assert BROADCAST_ROOM in relay.sio.manager.get_rooms(sid, "/")
    # and the client's socket owns its namespace's connection (closes it when it goes)
    connection = relay.handlers.connections.get("/", sid)
    assert connection is not None and connection.owner is socket

    # When the server pings (every second) and the client answers
    await eventually(lambda: calls["schedule_ping"] >= 2, timeout_s=5, what="a PONG")
    # Then the PONG went from uvicorn's handle_text straight to the socket's schedule_ping,
    # not through engine.io's receive (the connect's own schedule_ping is the first call)
    assert calls["handle_text"] >= 1
    pongs_through_app = [e for e in live.events if e[0] == "rx" and e[1].packet_type == 3]
    assert pongs_through_app == []

    # When an event is emitted to everyone
    frames = calls["write_frame"]
    await relay.sio.emit("hello", {"n": 1}, to=BROADCAST_ROOM)
    await eventually(lambda: live.received == [{"n": 1}], timeout_s=5, what="the event")
    # Then FanoutManager.emit wrote its frame straight to the connection
    assert calls["write_frame"] > frames
    assert any(e[0] == "frame" and b'"hello"' in e[1] for e in live.events)

    # When the client leaves
    await live.client.disconnect()
    # Then engine.io's disconnect went through our _trigger_event (where a long-polling
    # client's close is answered), and python-socketio's through basic_disconnect
    await eventually(lambda: not relay.handlers.connections, timeout_s=5, what="disconnect")
    assert ("disconnect", socket.sid) in [e[:2] for e in live.events]
    assert calls["basic_disconnect"] >= 1
    assert relay.sio.manager.get_rooms(sid, "/") == []
    # and the collector counted the client's departure (server/collector.py)
    assert relay.collector.departures == 1


async def test_a_clients_frames_of_one_pass_go_in_one_write_before_its_disconnect(
    live: Live,
) -> None:
    relay = live.relay
    await eventually(lambda: len(relay.handlers.connections) == 1, timeout_s=5, what="connect")
    ((_, sid),) = relay.handlers.connections
    # When three events are emitted to the client in one stretch of the event loop, and the
    # server disconnects it right after (its packet goes through the socket's writer task and
    # uvicorn's send, not the direct frame path)
    for n in range(3):
        await relay.sio.emit("hello", {"n": n}, to=BROADCAST_ROOM)
    await relay.sio.disconnect(sid)
    # Then the client received the three, in order, before it was disconnected
    await eventually(lambda: not live.client.connected, timeout_s=5, what="the disconnect")
    assert live.received == [{"n": 0}, {"n": 1}, {"n": 2}]
    # and the three frames went to the connection in one write (with the disconnect's
    # packet after them: it too found nothing queued)
    writes = [e[1] for e in live.events if e[0] == "write"]
    hellos = [[b'"hello"' in frame for frame in frames] for frames in writes]
    assert [flags[:3] for flags in hellos if any(flags)] == [[True, True, True]]
