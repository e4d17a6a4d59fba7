"""A client that stops reading cannot grow the server's memory or slow the others down
(server/outgoing/queue.py): past its outgoing queue's bound it is told why and disconnected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import (
    eventually,
    metric,
    report,
    rss_kib,
    send_async,
    wait_log,
    wait_recovery,
)
from tests.integration.rawclient import RawClient
from tests.processes import Processes, Stack, healthz
from tests.tokens import token

BIG = "x" * 200_000  # an event of about 200 KB
EVENTS = 300  # about 60 MB for a client that never reads


def latencies_s(reader: RecordingClient, numbers: range) -> list[float]:
    """SQS send to this client's receive, for the events numbered `numbers`, sorted."""
    return sorted(
        reader.received_at[i] - p["sent_ms"] / 1000
        for i, (_, p) in enumerate(reader.events)
        if p["data"]["n"] in numbers
    )


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def send_events(stack: Stack, sqs: Any, numbers: range) -> None:
    for first in range(numbers.start, numbers.stop, 4):  # SQS batches hold 1 MB at most
        last = min(first + 4, numbers.stop)
        bodies = [{"event": "e", "data": {"n": n, "big": BIG}} for n in range(first, last)]
        await send_async(sqs, stack.queue_url, bodies)


async def test_a_client_that_stops_reading_is_cut_and_the_others_keep_up(
    processes: Processes, stack: Stack
) -> None:
    # Given a server whose clients may queue 512 KB each (and keep 1 MB of replay), and two
    # clients that read, which get 50 events of 200 KB while all is well (after 10 to warm up)
    processes.sqs(stack)
    server = processes.server(
        stack,
        CLIENT_QUEUE_MAX_BYTES=str(512 * 1024),
        RESUME_MAX_BYTES=str(256 * 1024),
        REPLAY_MAX_BYTES=str(1024 * 1024),
        CLIENT_WRITE_TIMEOUT_S="120",  # (the stuck client reads its notice at the end)
    )
    processes.worker(stack)
    sqs = stack.sqs_client()
    readers = [await RecordingClient().connect(stack.base_url) for _ in range(2)]
    warm, calm, stalled = range(0, 10), range(10, 60), range(60, 60 + EVENTS)
    for phase in (warm, calm):  # (the first events wait for the worker's first poll)
        await send_events(stack, sqs, phase)
        for reader in readers:
            await reader.wait_for(phase.stop, timeout_s=120)
    rss_before = rss_kib(server) / 1024

    # When a client connects and never reads, and 300 more such events go to everyone
    # (60 MB for the one that does not read)
    stuck = await asyncio.to_thread(RawClient, stack.http_port)
    stuck.connect({"token": token()})  # to "/", and then it never reads
    await eventually(
        lambda: metric(stack.base_url, "relay_connected_clients") == 3, what="3 clients"
    )
    await send_events(stack, sqs, stalled)
    for reader in readers:
        await reader.wait_for(stalled.stop, timeout_s=180)

    # Then the readers got every event once, in order, about as fast as before,
    for reader in readers:
        assert [p["data"]["n"] for _, p in reader.events] == list(range(stalled.stop))
    before = [latencies_s(reader, calm) for reader in readers]
    during = [latencies_s(reader, stalled) for reader in readers]
    # and the server's memory stayed flat,
    growth = rss_kib(server) / 1024 - rss_before
    seen = await asyncio.to_thread(stuck.read_all)
    stuck.close()
    notice = re.search(rb'42\["relay:overflow",\{"reason":"([^"]*)"\}\]', seen)
    reason = notice.group(1).decode() if notice else None
    # and the stuck client was disconnected, counted, and told why once it read again
    disconnected = healthz(stack.base_url)["counters"].get("slow_client_disconnected")
    report(
        "slow client",
        disconnected=disconnected,
        rss_growth_mib=f"{growth:.1f}",
        sent_to_stuck_mb=len(stalled) * len(BIG) // 1_000_000,
        readers_p50_ms_before=[round(p(v, 0.5) * 1000) for v in before],
        readers_p50_ms_during=[round(p(v, 0.5) * 1000) for v in during],
        readers_p99_ms_during=[round(p(v, 0.99) * 1000) for v in during],
    )
    assert disconnected == 1
    assert metric(stack.base_url, "relay_slow_client_disconnected_total") == 1
    assert reason is not None and "too slow" in reason and "CLIENT_QUEUE_MAX_BYTES" in reason
    assert growth < 25, f"server RSS grew {growth:.1f} MiB"
    # (a loose bound: moto and the machine set the pace; a reader held up by the stuck
    # client would be seconds behind)
    for b, d in zip(before, during, strict=True):
        assert p(d, 0.5) < 3 * p(b, 0.5) + 1.0, (b, d)
    for reader in readers:
        await reader.close()


async def test_a_client_that_takes_nothing_has_its_connection_aborted(
    processes: Processes, stack: Stack
) -> None:
    # Given a server with a 2-second write timeout, and a client that never reads
    processes.sqs(stack)
    server = processes.server(stack, CLIENT_WRITE_TIMEOUT_S="2")
    processes.worker(stack)
    sqs = stack.sqs_client()
    stuck = await asyncio.to_thread(RawClient, stack.http_port)
    stuck.connect({"token": token()})
    await eventually(lambda: metric(stack.base_url, "relay_connected_clients") == 1, what="it")

    # When 40 events of 200 KB go out (8 MB: more than the socket buffers hold, less than
    # its queue's bound, so only the write timeout can end it)
    await send_events(stack, sqs, range(40))
    await stack.wait_counter("emitted", 40)

    # Then the server aborts its TCP connection, and forgets the client
    await wait_log(server, "CLIENT_WRITE_TIMEOUT_S); aborting its connection", timeout_s=30)
    assert await asyncio.to_thread(stuck.how_it_ends) == "reset"
    await eventually(lambda: metric(stack.base_url, "relay_connected_clients") == 0, what="0")
    assert healthz(stack.base_url)["counters"].get("slow_client_disconnected") is None
    stuck.close()


async def test_an_overflowing_client_is_told_on_each_namespace_and_can_come_back(
    processes: Processes, stack: Stack
) -> None:
    # Given a server whose clients may queue 512 KB each (and resume 256 KB at once), and a
    # client connected to two namespaces, asking for its position on "/", that never reads
    processes.sqs(stack)
    processes.server(
        stack,
        CLIENT_QUEUE_MAX_BYTES=str(512 * 1024),
        RESUME_MAX_BYTES=str(256 * 1024),
        CLIENT_WRITE_TIMEOUT_S="120",  # (it reads its notice at the end)
    )
    processes.worker(stack)
    sqs = stack.sqs_client()
    stuck = await asyncio.to_thread(RawClient, stack.http_port, receive_buffer=4096)
    stuck.connect({"token": token(), "since": None})
    stuck.send_text("40/other," + json.dumps({"token": token()}))
    await eventually(
        lambda: metric(stack.base_url, "relay_connected_clients") == 2,
        what="both namespaces connected",
    )

    # When more events go to "/" than the connection (the kernel takes about 3 MB on
    # loopback) and the queue hold
    ids = await send_async(
        sqs,
        stack.queue_url,
        [{"event": "e", "data": {"n": n, "pad": "x" * 20_000}} for n in range(200)],
    )
    await eventually(
        lambda: healthz(stack.base_url)["counters"].get("slow_client_disconnected") == 1,
        what="the client cut for reading too slowly",
        timeout_s=60,
    )

    # Then, once it reads, it finds the notice on each of its namespaces, after the events
    # the connection still held
    packets = await asyncio.to_thread(read_packets, stuck)
    stuck.close()
    notices = [p for p in packets if '"relay:overflow"' in p]
    assert [p.split("[", 1)[0] for p in notices] == ["2", "2/other,"], notices
    assert all("too slow" in p for p in notices)
    got = [json.loads(p[1:])[1] for p in packets if p.startswith('2["e",')]
    assert 0 < len(got) < len(ids)

    # And when it comes back with the last position it had, it is connected and told the
    # truth: it missed more than its queue held, so more than one resume may replay
    # (CLIENT_QUEUE_MAX_BYTES is above RESUME_MAX_BYTES): resync, and go on from here
    await eventually(
        lambda: healthz(stack.base_url)["counters"]["emitted"] == len(ids),
        what="every event emitted",
    )
    back = await RecordingClient().connect(
        stack.base_url,
        auth={"since": {"epoch": got[-1]["epoch"], "offset": got[-1]["offset"]}},
    )
    recovery = await asyncio.wait_for(wait_recovery(back), 10)
    report("overflow and back", read_before_cut=len(got), recovery=recovery)
    assert recovery["recovered"] is False and "resync" in recovery["reason"]
    assert recovery["offset"] == len(ids)
    [live] = await send_async(sqs, stack.queue_url, [{"event": "e", "data": {"n": "live"}}])
    await back.wait_for(2, timeout_s=30)
    assert back.ids() == [live]
    await back.close()


def read_packets(client: RawClient) -> list[str]:
    """The Socket.IO packets (the Engine.IO messages' text after their "4") a client had been
    sent, read until the server closed the connection."""
    packets = []
    with contextlib.suppress(ConnectionError):
        while True:
            opcode, payload = client.next_frame(timeout_s=30)
            if opcode == 1 and payload.startswith(b"4"):
                packets.append(payload[1:].decode())
            elif opcode == 8:  # close
                break
    return packets
