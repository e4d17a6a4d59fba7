"""A WebSocket connection's HTTP protocol is freed at its upgrade, by reference counting, not
left in a cycle with its parser for a full collection (server/adapters/httpprotocol.py):
a real uvicorn in this process, with the relay's HTTP and WebSocket protocols, and a real
WebSocket client, with the collector off so that only reference counting frees anything."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from server.adapters.httpprotocol import _HttpProtocol, http_protocol
from server.adapters.refusals import Refusals
from server.adapters.wsprotocol import websocket_protocol
from shared.counters import Counters
from tests.integration.helpers import eventually
from tests.processes import free_port


async def echo_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that accepts a WebSocket and answers its first message."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    if message["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})
    await receive()  # the close


@pytest.fixture
async def url() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        echo_once,
        host="127.0.0.1",
        port=port,
        http=http_protocol(header_timeout_s=30, max_connections=0, refusals=Refusals(Counters())),
        ws=websocket_protocol(10.0),
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, timeout_s=10, what="uvicorn to start")
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


async def test_the_http_protocol_of_an_upgraded_connection_is_freed_at_once(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgraded: list[weakref.ref[_HttpProtocol]] = []
    original = _HttpProtocol.handle_websocket_upgrade

    def noted(self: _HttpProtocol) -> None:
        upgraded.append(weakref.ref(self))
        original(self)

    monkeypatch.setattr(_HttpProtocol, "handle_websocket_upgrade", noted)
    gc.collect()
    gc.disable()  # nothing but reference counting frees what follows
    try:
        # When a client connects over WebSocket and talks on the upgraded connection
        async with connect(url) as websocket:
            await websocket.send("ping")
            assert await websocket.recv() == "ping"
            # Then the HTTP protocol it was upgraded from is already gone
            assert len(upgraded) == 1
            assert upgraded[0]() is None
    finally:
        gc.enable()
