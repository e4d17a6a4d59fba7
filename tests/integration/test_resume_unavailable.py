"""A resume while the shared history is unavailable is "try again", not a lost stream: cluster
mode on real processes (the embedded SQS, redis-server, nginx, two servers, a worker), clients
made with the Python helper (RelayClient) spread over both servers by nginx. One server is
killed and Redis stopped before its clients resume on the other; when Redis is back, each of
them resumes again by itself and recovers, and none is told to resync."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqs_relay_client import Event, Recovery, RelayClient

from tests.integration.helpers import (
    eventually,
    metric,
    queue_depth,
    report,
    send_async,
    wait_log,
)
from tests.processes import Process, Processes, Stack, free_port, healthz, wait_until
from tests.tokens import token

pytestmark = pytest.mark.timeout(180)

ROOMS = ["r0", "r1"]
CLIENTS = 8
#: The helpers come back after this (python-socketio's reconnect, and a resume answered "try
#: again"), doubling up to the max: long enough for Redis to be stopped first.
RECONNECT = {"reconnection_delay": 1.5, "reconnection_delay_max": 2.0}


@dataclass
class Listener:
    """One RelayClient, what its app got (ids in arrival order) and what it was told."""

    client: RelayClient
    room: str
    ids: list[str] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)


def bodies(first: int, count: int) -> list[dict[str, Any]]:
    """Every other message to everyone, the rest to one room each."""
    return [
        {"event": "e", "data": {"n": n}, "room": None if n % 2 == 0 else ROOMS[n % 4 // 2]}
        for n in range(first, first + count)
    ]


async def send_all(stack: Stack, first: int, count: int) -> dict[str, str | None]:
    """Send `count` messages in batches of 10; return their rooms by MessageId."""
    sqs = stack.sqs_client()
    rooms: dict[str, str | None] = {}
    for start in range(first, first + count, 10):
        batch = bodies(start, min(10, first + count - start))
        ids = await send_async(sqs, stack.queue_url, batch)
        rooms.update(zip(ids, [b["room"] for b in batch], strict=True))
    return rooms


def expected(listener: Listener, rooms: dict[str, str | None]) -> set[str]:
    return {i for i, room in rooms.items() if room is None or room == listener.room}


async def test_clients_resuming_while_redis_is_down_recover_once_it_is_back_and_none_resyncs(
    processes: Processes, stack: Stack
) -> None:
    # Given Redis, two servers behind nginx and a worker, and 8 clients spread over them
    processes.sqs(stack)
    redis_port, nginx_port = free_port(), free_port()
    redis_env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "ACK_TIMEOUT_S": "2",
                 "SQS_VISIBILITY_TIMEOUT_S": "3"}  # fmt: skip
    redis: Process = processes.redis(redis_port)
    servers: dict[int, Process] = {}
    endpoints = []
    for n in range(2):
        http_port, zmq_port = free_port(), free_port()
        env = stack.env(PORT=str(http_port), ZMQ_BIND=f"tcp://127.0.0.1:{zmq_port}", **redis_env)
        server = processes.start(f"server{n + 1}", ["-m", "server"], env)
        server.wait_ready(
            lambda port=http_port: healthz(f"http://127.0.0.1:{port}")["redis"],
            what=f"server {n + 1} with Redis",
        )
        servers[http_port] = server
        endpoints.append(f"tcp://127.0.0.1:{zmq_port}")
    processes.balancer(nginx_port, list(servers))
    processes.worker(stack, ZMQ_CONNECT=",".join(endpoints), **redis_env)

    listeners: list[Listener] = []
    consumers: list[asyncio.Task[None]] = []

    async def consume(listener: Listener) -> None:
        event: Event
        async for event in listener.client:
            assert event.id is not None
            listener.ids.append(event.id)

    try:
        for n in range(CLIENTS):
            recoveries: list[Recovery] = []
            client = RelayClient(
                f"http://127.0.0.1:{nginx_port}/?affinity={uuid.uuid4()}",
                token=lambda: token(),
                rooms=[ROOMS[n % 2]],
                transports=["websocket"],
                on_recovery=recoveries.append,
                **RECONNECT,
            )
            await client.connect()
            listener = Listener(client, ROOMS[n % 2], recoveries=recoveries)
            listeners.append(listener)
            consumers.append(asyncio.create_task(consume(listener)))
        spread = {
            port: metric(f"http://127.0.0.1:{port}", "relay_connected_clients") for port in servers
        }
        assert all(spread.values()), f"nginx put every client on one server: {spread}"

        # and events flowing to every client
        rooms = await send_all(stack, 0, 40)
        await eventually(
            lambda: all(len(x.ids) >= 5 for x in listeners), what="events reaching every client"
        )

        # When the server with the most clients is killed, Redis is stopped at once (before
        # its clients come back, RECONNECT), and more messages are sent meanwhile
        victim = max(spread, key=lambda port: spread[port])
        (survivor,) = [p for p in servers if p != victim]
        mark = len(servers[survivor].log())
        servers[victim].send_signal(signal.SIGKILL)
        redis.stop()
        rooms |= await send_all(stack, 40, 40)
        # the victim's clients resume on the other server, which answers "try again": each
        # keeps its own position and asks again, none is told to resync
        await wait_log(servers[survivor], "will resume", after=mark)
        await eventually(
            lambda: sum(x.client.streams.retrying(None) for x in listeners) == spread[victim],
            what="every client of the killed server to be answered 'try again'",
        )
        retries = servers[survivor].log()[mark:].count("will resume")
        moved = [x for x in listeners if x.client.streams.retrying(None)]
        told_to_resync_while_down = [r for x in listeners for r in x.recoveries if not r.recovered]
        loop = asyncio.get_running_loop()
        redis = processes.redis(redis_port, name="redis-again")
        back = loop.time()

        # Then every client gets each of its events once, the victim's clients report their
        # resumes as recovered (served after Redis came back), and none was told to resync
        await eventually(
            lambda: all(expected(x, rooms) <= set(x.ids) for x in listeners),
            timeout_s=60,
            what="every client to have all its events",
        )
        await eventually(
            lambda: all(any(r.room is None for r in x.recoveries) for x in moved),
            what="the moved clients' connect resumes to be served",
        )
        assert not any(x.client.streams.retrying(None) for x in listeners)
        recovered_s = loop.time() - back
        assert told_to_resync_while_down == []
        for listener in listeners:
            repeats = [i for i, n in Counter(listener.ids).items() if n > 1]
            strays = set(listener.ids) - expected(listener, rooms)
            assert not repeats and not strays, (listener.room, repeats, strays)
            assert all(r.recovered for r in listener.recoveries), listener.recoveries
        await asyncio.to_thread(
            wait_until,
            lambda: queue_depth(stack.sqs_client(), stack.queue_url) == 0,
            timeout_s=30,
            what="the queue to drain",
        )
    finally:
        for listener in listeners:
            await listener.client.close()
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
    report(
        "resume while Redis is down",
        clients=len(listeners),
        on_killed_server=int(spread[victim]),
        try_again_answers=retries,
        resumed=len(moved),
        replayed=sum(r.replayed for x in moved for r in x.recoveries),
        recovered_after_redis_back_s=round(recovered_s, 2),
        resyncs=0,
    )
