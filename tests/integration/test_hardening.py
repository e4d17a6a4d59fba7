"""No single client can break, stall or fill the server (issue: hardening), on real processes:
non-finite numbers in client events, a replay flood from a client that never reads,
join/leave order, token expiry, and a long-polling client's close. (A transport that closes
while connecting: tests/server/test_handlers.py, where the test decides the moment.)"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from pathlib import Path
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import rss_kib, send, send_async
from tests.integration.rawclient import RawClient
from tests.processes import Process, Processes, Stack, healthz, wait_until
from tests.tokens import token

BIG = "x" * 240_000  # just under MAX_MESSAGE_BYTES (256 KiB) once wrapped in an envelope


def rss_mib(process: Process) -> float:
    return rss_kib(process) / 1024


def counter(stack: Stack, name: str) -> int:
    return int(healthz(stack.base_url)["counters"].get(name, 0))


async def test_a_client_event_with_nan_is_refused_and_reaches_nobody(
    processes: Processes, stack: Stack
) -> None:
    # Given two clients in one room (python-socketio's client writes NaN, as json.dumps does)
    processes.server(stack)
    sender = await RecordingClient().connect(stack.base_url)
    other = await RecordingClient().connect(stack.base_url)
    for client in (sender, other):
        assert (await client.call("join", "shop"))["ok"]

    # When one sends item_removed with NaN, Infinity and a number too large for a double
    answers = [
        await sender.call("item_removed", {"id": value})
        for value in (float("nan"), float("inf"), float("-inf"))
    ]

    # Then each is refused with a reason, and the other client gets none of them
    for answer in answers:
        assert answer["ok"] is False and "NaN or Infinity" in answer["error"], answer
    assert (await sender.call("item_removed", {"id": 7}))["ok"]  # a finite one is relayed
    await other.wait_for(1)
    await other.call("join", "barrier")
    assert other.of("item_removed") == [{"data": {"id": 7}, "from": sender.sio.get_sid()}]
    await sender.close()
    await other.close()


async def test_a_replay_flood_from_a_client_that_never_reads_leaves_the_server_alone(
    processes: Processes, stack: Stack
) -> None:
    # Given 60 events of 240 KB in room "big" (14 MB of replayable history), a live client
    processes.sqs(stack)
    server = processes.server(stack)
    worker = processes.worker(stack)
    sqs = stack.sqs_client()
    live = await RecordingClient().connect(stack.base_url)
    assert (await live.call("join", "live"))["ok"]
    for n in range(0, 60, 4):
        await send_async(
            sqs, stack.queue_url, [{"event": "e", "data": BIG, "room": "big"}] * min(4, 60 - n)
        )
    await stack.wait_counter("emitted", 60, timeout_s=120)
    epoch = healthz(stack.base_url)["epoch"]
    rss_before = rss_mib(server)

    # When one connection asks 100 times to join "big" with a replay (half from the start,
    # half the last 3 events, 720 KB each) and never reads what it is sent
    flood = await asyncio.to_thread(RawClient, stack.http_port)
    flood.connect({"token": token()})
    for n in range(100):
        offset = 0 if n % 2 else 57
        flood.emit(n, "join", {"room": "big", "since": {"epoch": epoch, "offset": offset}})
    # every request is answered or refused: by rate, or by the replay byte budgets (at most
    # 5 x 720 KB fit RESUME_MAX_BYTES_PER_CONNECTION, 4 MiB)
    await asyncio.to_thread(
        wait_until,
        lambda: counter(stack, "join_refused") + counter(stack, "recovery_failed") >= 95,
        timeout_s=60,
        what="the server to have handled the 100 joins",
    )

    # Then a live event still arrives promptly, no batch waited past its ack timeout, and the
    # server's memory grew by far less than 100 MB (main: 1.5 GB, and a live emit held 12.5 s)
    sent = time.monotonic()
    send(sqs, stack.queue_url, [{"event": "e", "data": "live", "room": "live"}])
    await live.wait_for(1, timeout_s=30)
    latency_s = time.monotonic() - sent
    growth = rss_mib(server) - rss_before
    print(
        f"\n[replay flood] rss_growth_mib={growth:.1f} live_latency_s={latency_s:.3f} "
        f"join_refused={counter(stack, 'join_refused')} "
        f"recovery_failed={counter(stack, 'recovery_failed')} "
        f"resume_refused={counter(stack, 'resume_refused')} replayed={counter(stack, 'replayed')}"
    )
    assert growth < 100, growth
    assert latency_s < 2.0, latency_s
    assert "No confirmation" not in worker.log()
    assert counter(stack, "replayed") <= 5 * 3
    flood.close()
    await live.close()


async def test_join_then_leave_is_answered_in_order_and_leaves_the_client_out(
    processes: Processes, stack: Stack
) -> None:
    # Given a room with 100 events of history
    processes.relay(stack)
    sqs = stack.sqs_client()
    send(sqs, stack.queue_url, [{"event": "e", "data": n, "room": "shop"} for n in range(100)])
    await stack.wait_counter("emitted", 100, timeout_s=120)
    epoch = healthz(stack.base_url)["epoch"]
    client = await RecordingClient().connect(stack.base_url)

    # When it sends a join with a replay and, without waiting, a leave
    answered: list[str] = []
    done = asyncio.Event()

    def on(name: str) -> Any:
        def record(*_answer: Any) -> None:
            answered.append(name)
            if len(answered) == 2:
                done.set()

        return record

    since = {"epoch": epoch, "offset": 0}
    await client.sio.emit("join", {"room": "shop", "since": since}, callback=on("join"))
    await client.sio.emit("leave", "shop", callback=on("leave"))
    await asyncio.wait_for(done.wait(), 30)

    # Then the join was answered first, and the client is not in the room (main: leave first,
    # and the client stayed in)
    assert answered == ["join", "leave"]
    send(sqs, stack.queue_url, [{"event": "after", "data": 1, "room": "shop"}])
    send(sqs, stack.queue_url, [{"event": "after", "data": 2}])
    await client.wait_for(101)
    await client.call("join", "barrier")
    assert [p["data"] for p in client.of("after")] == [2]
    await client.close()


async def test_an_expired_token_is_disconnected_with_a_reason(
    processes: Processes, stack: Stack
) -> None:
    # Given a client whose token expires in 2 s (no clock-skew leeway)
    processes.server(stack, JWT_LEEWAY_S="0")
    client = await RecordingClient().connect(
        stack.base_url, auth={"token": token(exp=int(time.time()) + 2)}
    )
    assert (await client.call("join", "shop"))["ok"]

    # When the token expires
    await client.wait_for(1, timeout_s=10)

    # Then the server says why and disconnects it (main: it stayed, and joined at will)
    assert client.events[0] == (
        "relay:expired",
        {"reason": "token expired: reconnect with a new token"},
    )
    await asyncio.to_thread(
        wait_until, lambda: not client.sio.connected, timeout_s=10, what="the disconnect"
    )


class Polling:
    """An engine.io long-polling client by hand (blocking calls; wrap them in
    `asyncio.to_thread`), so that a test sees what each GET is answered with, and can tell
    when the server has read a request.

    Usage::

        polling = Polling(port)                 # engine.io handshake
        polling.post('40{"token": "..."}')      # Socket.IO CONNECT to "/"
        pending = polling.send_get()            # a GET whose answer is read later
        status, body = Polling.answer(pending)
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.path = "/socket.io/?EIO=4&transport=polling"
        status, body = self.answer(self.send_get())
        assert status == 200 and body.startswith("0"), (status, body)
        self.path += "&sid=" + json.loads(body[1:])["sid"]

    def send_get(self) -> http.client.HTTPConnection:
        """Send a GET on a connection of its own; its answer is not read yet."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", self.path)
        return conn

    def post(self, payload: str) -> tuple[int, str]:
        """POST engine.io packets (several joined by the record separator, 0x1e)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", self.path, body=payload.encode())
        return self.answer(conn)

    @staticmethod
    def answer(conn: http.client.HTTPConnection) -> tuple[int, str]:
        with contextlib.closing(conn):
            response = conn.getresponse()
            return response.status, response.read().decode()

    def server_has_read(self, conn: http.client.HTTPConnection) -> bool:
        """Whether the server took all `conn` sent out of its socket (loopback: what a
        client sent is in the server's receive queue once `send` returned)."""
        client_port = conn.sock.getsockname()[1]
        local, remote = f"0100007F:{self.port:04X}", f"0100007F:{client_port:04X}"
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1:3] == [local, remote]:
                return int(fields[4].split(":")[1], 16) == 0
        raise AssertionError(f"no server-side socket for client port {client_port}")


async def test_a_long_polling_clients_close_itself_answers_its_pending_get(
    processes: Processes, stack: Stack
) -> None:
    # Given a client on long-polling, connected to "/", its next GET read by the server and
    # pending there (nothing to send it: the first ping is CLIENT_PING_INTERVAL_S, 25 s, away)
    processes.server(stack)
    polling = await asyncio.to_thread(Polling, stack.http_port)
    connect = "40" + json.dumps({"token": token()})
    assert await asyncio.to_thread(polling.post, connect) == (200, "OK")
    status, connected = await asyncio.to_thread(Polling.answer, polling.send_get())
    assert status == 200 and connected.startswith("40{"), connected
    pending = await asyncio.to_thread(polling.send_get)
    await asyncio.to_thread(
        wait_until,
        lambda: polling.server_has_read(pending),
        timeout_s=10,
        what="the server to read the pending GET",
    )

    # When it closes as python-socketio's client does: Socket.IO DISCONNECT, engine.io CLOSE
    assert await asyncio.to_thread(polling.post, "41\x1e1") == (200, "OK")

    # Then that GET is answered by the close itself: with no packets. Not by the next ping
    # ("2"), nor by the poll's timeout 45 s on (an error): python-engineio on its own held it
    # until then, and a python-socketio client's close() waited for it. (The wait_for only
    # keeps a failing run from hanging.)
    answer = await asyncio.wait_for(asyncio.to_thread(Polling.answer, pending), 60)
    assert answer == (200, "")
