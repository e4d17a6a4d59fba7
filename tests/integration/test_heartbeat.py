"""The heartbeat on timers (server/adapters/transport.py, server/adapters/wsprotocol.py): a
client that answers every PING stays connected, one that does not is disconnected at its
deadline, both over a real server's WebSocket."""

from __future__ import annotations

import asyncio
import json

from tests.integration.helpers import eventually, metric
from tests.integration.rawclient import RawClient
from tests.processes import Processes, Stack
from tests.tokens import token

TEXT, CLOSE = 0x1, 0x8


def connected(port: int) -> RawClient:
    """A raw WebSocket client past engine.io's OPEN and Socket.IO's CONNECT to "/"."""
    client = RawClient(port)
    opcode, data = client.next_frame()
    assert opcode == TEXT and data.startswith(b"0"), data  # engine.io OPEN
    assert json.loads(data[1:])["pingInterval"] == 1000
    client.connect({"token": token()})
    opcode, data = client.next_frame()
    assert opcode == TEXT and data.startswith(b"40"), data
    return client


def answer_pings(client: RawClient, pings: int) -> list[bytes]:
    """Answer `pings` PINGs with a PONG each; what else came meanwhile."""
    other = []
    while pings:
        opcode, data = client.next_frame(timeout_s=10)
        assert opcode == TEXT, (opcode, data)  # not a close
        if data == b"2":
            client.send_text("3")
            pings -= 1
        else:
            other.append(data)
    return other


async def test_a_client_that_answers_stays_and_one_that_does_not_is_cut(
    processes: Processes, stack: Stack
) -> None:
    # Given a server that pings every second and waits a second for the answer
    processes.server(stack, CLIENT_PING_INTERVAL_S="1", CLIENT_PING_TIMEOUT_S="1")
    answering = await asyncio.to_thread(connected, stack.http_port)
    silent = await asyncio.to_thread(connected, stack.http_port)
    await eventually(lambda: metric(stack.base_url, "relay_connected_clients") == 2, what="2")

    # When one answers every PING (4 of them, in a thread) and the other none
    answered = asyncio.ensure_future(asyncio.to_thread(answer_pings, answering, 4))

    # Then the silent one gets one PING and then, its deadline passed, engine.io's CLOSE and
    # the WebSocket's close
    frames = [await asyncio.to_thread(silent.next_frame) for _ in range(3)]
    assert [f[0] for f in frames] == [TEXT, TEXT, CLOSE], frames
    assert [f[1] for f in frames[:2]] == [b"2", b"1"]
    await eventually(lambda: metric(stack.base_url, "relay_connected_clients") == 1, what="1")
    # and the answering one gets its next PING each time after its PONG (each PONG reached
    # the socket's heartbeat, though it does not wake the socket's reader), past the
    # deadline that cut the silent one
    assert await answered == []
    assert metric(stack.base_url, "relay_connected_clients") == 1
    answering.close()
    silent.close()


async def test_a_client_that_answers_neither_ping_nor_close_is_reset(
    processes: Processes, stack: Stack
) -> None:
    # Given a server that pings every second, and a client that reads everything but answers
    # nothing: no PONG, and no reply to the WebSocket close it is sent
    processes.server(stack, CLIENT_PING_INTERVAL_S="1", CLIENT_PING_TIMEOUT_S="1")
    silent = await asyncio.to_thread(connected, stack.http_port)
    frames = [await asyncio.to_thread(silent.next_frame) for _ in range(3)]
    assert [f[0] for f in frames] == [TEXT, TEXT, CLOSE], frames

    # When it keeps reading without replying to that close
    ending = await asyncio.to_thread(silent.how_it_ends, 60)

    # Then the server resets the connection once its close timeout passes (uvicorn alone
    # would end with a plain close that waits for a flush, and keep the connection's task)
    assert ending == "reset"
    await eventually(lambda: metric(stack.base_url, "relay_connected_clients") == 0, what="0")
    silent.close()
