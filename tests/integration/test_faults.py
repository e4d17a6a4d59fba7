"""Guarantees 1, 2, 4, 5 and 6 on real processes: kill, starve and stop things mid-stream.

Each test is bounded in message count and time and stops by itself. The counts each one saw
are printed (run with -s) for the issue notes.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from typing import Any

from tests.clients import RecordingClient
from tests.integration.helpers import (
    SHUTDOWN_TIMEOUT_S,
    attributes,
    replay_of_this_epoch,
    report,
    rss_kib,
    send_async,
    sigterm_together,
    tally,
    wait_log,
    wait_queue_empty_async,
    wait_recovery,
)
from tests.processes import Processes, Stack, healthz
from tests.tokens import token

FAST_REDELIVERY = {"SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}


async def test_a_worker_killed_mid_stream_loses_nothing_and_duplicates_nothing(
    processes: Processes, stack: Stack
) -> None:
    # Given three workers and a short visibility timeout
    stack.extra.update(FAST_REDELIVERY)
    processes.sqs(stack)
    processes.server(stack)
    workers = [processes.worker(stack, name=f"worker{n}") for n in range(3)]
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()

    # When 1,000 messages flow and one worker is killed with SIGKILL part-way
    sending = asyncio.create_task(
        send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(1000)])
    )
    await client.wait_for(250, timeout_s=120)
    workers[0].popen.send_signal(signal.SIGKILL)
    ids = await sending

    # Then every message arrives, none twice, and the queue ends empty
    await client.wait_for(1000, timeout_s=180)
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=120)
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    report(
        "worker killed",
        sent=len(ids),
        delivered=len(counts),
        lost=len(set(ids) - set(counts)),
        duplicated=sum(c - 1 for c in counts.values()),
        server_dropped_duplicates=healthz(stack.base_url)["counters"].get("duplicate_dropped", 0),
    )
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    await client.close()


async def test_a_server_killed_and_restarted_loses_nothing(
    processes: Processes, stack: Stack
) -> None:
    # Given a server, a worker and a client that reconnects by itself, presenting the epoch and
    # offset of the last event it saw (docs/protocol.md, "Replay on reconnect")
    stack.extra.update(FAST_REDELIVERY)
    processes.sqs(stack)
    server = processes.server(stack)
    processes.worker(stack)
    client = RecordingClient(reconnection=True)
    away = asyncio.Event()  # while set, the client stays away: its connects are refused

    def resume_auth() -> dict[str, Any]:
        if away.is_set():
            return {}  # no token: refused, and the client tries again by itself
        seen = [p for e, p in client.events if not e.startswith("relay:")]
        since = {"epoch": seen[-1]["epoch"], "offset": seen[-1]["offset"]} if seen else None
        return {"token": token()} | ({"since": since} if since else {})

    await client.sio.connect(stack.base_url, auth=resume_auth, wait_timeout=10)
    sqs = stack.sqs_client()

    # When the server is killed with SIGKILL mid-stream and started again, and the client
    # comes back only once the new server has emitted some events (so that it has a gap to
    # recover; left to itself it may reconnect before the first one)
    sending = asyncio.create_task(
        send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(300)])
    )
    await client.wait_for(60, timeout_s=60)
    away.set()
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(10)
    before = set(client.ids())
    await asyncio.to_thread(processes.server, stack)
    epoch = healthz(stack.base_url)["epoch"]
    await stack.wait_counter("emitted", 20)
    away.clear()

    # Then the client's own resume is answered "not recovered" (another epoch), and the new
    # server replays to it everything it emitted since its start
    recovery = await asyncio.wait_for(wait_recovery(client), 30)
    assert recovery["recovered"] is False
    assert recovery["reason"]
    assert recovery["epoch"] == epoch
    assert recovery["replayed"] >= 20
    ids = await sending
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=120)
    await client.call("join", "barrier")  # what was emitted before the answer has arrived

    # And its own events, before the kill and after, cover every message sent
    seen = set(client.ids())
    new_epoch = [p["offset"] for e, p in client.events if e == "n" and p["epoch"] == epoch]
    report(
        "server killed",
        sent=len(ids),
        delivered=len(seen & set(ids)),
        lost=len(set(ids) - seen),
        before_the_kill=len(before),
        replayed=recovery["replayed"],
        emitted_twice_across_the_restart=len(before) + len(new_epoch) - len(seen),
    )
    assert new_epoch == list(range(1, len(new_epoch) + 1))  # from the epoch's start, no gap
    assert seen == set(ids)
    await client.close()


async def test_without_a_server_workers_stop_receiving_and_memory_stays_flat(
    processes: Processes, stack: Stack
) -> None:
    # Given a running relay whose server is then killed
    processes.sqs(stack)
    server = processes.server(stack)
    workers = [processes.worker(stack, name=f"worker{n}") for n in range(2)]
    sqs = stack.sqs_client()
    for worker in workers:
        await wait_log(worker, "is ready")
    marks = [len(w.log()) for w in workers]
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(10)

    # When 40 messages arrive while no server listens
    ids = await send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(40)])
    for worker, mark in zip(workers, marks, strict=True):
        await wait_log(worker, "Waiting for server(s)", after=mark)

    # Then for 30 s the workers take nothing: all 40 wait in SQS, none in flight, and the
    # workers' memory does not grow
    rss_before = [rss_kib(w) for w in workers]
    pause = threading.Event()
    deadline = time.monotonic() + 30
    samples = 0
    while time.monotonic() < deadline:
        assert attributes(sqs, stack.queue_url) == {"visible": 40, "invisible": 0}
        samples += 1
        await asyncio.to_thread(pause.wait, 0.5)  # sampling interval, not synchronisation
    growth = [rss_kib(w) - before for w, before in zip(workers, rss_before, strict=True)]
    report("backpressure", samples=samples, rss_growth_kib=growth)
    assert max(growth) < 5 * 1024

    # And when the server returns, everything is delivered. The workers rejoin as soon as it
    # answers their ping, possibly before a client connects, so the client has the server
    # replay its epoch from the start: what was emitted before it came, then live, no gap.
    processes.server(stack)
    client = await replay_of_this_epoch(stack)
    await client.wait_for(len(ids) + 1, timeout_s=60)  # and the relay:recovery answer
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    assert sorted(client.ids()) == sorted(ids)
    await client.close()


async def test_workers_started_before_the_server_lose_nothing(
    processes: Processes, stack: Stack
) -> None:
    # Given workers that start while no server exists yet
    processes.sqs(stack)
    workers = [processes.worker(stack, name=f"worker{n}") for n in range(2)]
    for worker in workers:
        await wait_log(worker, "Waiting for server(s)")
    sqs = stack.sqs_client()
    ids = await send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(30)])
    assert attributes(sqs, stack.queue_url)["invisible"] == 0  # nobody took them

    # When the server and a client come up (the client asks for the epoch from its start: the
    # workers may hand messages over before it connects)
    processes.server(stack)
    client = await replay_of_this_epoch(stack)

    # Then all arrive, once
    await client.wait_for(len(ids) + 1)  # and the relay:recovery answer
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    assert sorted(client.ids()) == sorted(ids)
    await client.close()


async def test_sigterm_under_load_drains_within_the_deadline_and_loses_nothing(
    processes: Processes, stack: Stack
) -> None:
    # Given two workers with the default 20-second long poll, under load
    stack.extra.update(FAST_REDELIVERY)
    processes.sqs(stack)
    server = processes.server(stack)
    workers = [processes.worker(stack, name=f"worker{n}", SQS_WAIT_S="20") for n in range(2)]
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    sending = asyncio.create_task(
        send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(400)])
    )
    await client.wait_for(100, timeout_s=60)

    # When server and workers get SIGTERM at once, as honcho sends it
    stopped = await sigterm_together(server, *workers)
    before = Counter(client.ids())
    ids = await sending

    # Then every one exited by itself within SHUTDOWN_TIMEOUT_S of that one signal (inside
    # honcho's 5 s)
    report(
        "drain",
        exit_codes=[code for code, _s in stopped],
        seconds=[round(s, 2) for _c, s in stopped],
        delivered_before_stop=len(before),
    )
    assert [code for code, _s in stopped] == [0, 0, 0]
    assert max(seconds for _c, seconds in stopped) <= SHUTDOWN_TIMEOUT_S
    returned = sum(_returned_on_shutdown(w.log()) for w in workers)

    # And after a restart every message arrives, none twice
    processes.server(stack)
    processes.worker(stack, name="worker-after")
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=120)
    after = await replay_of_this_epoch(stack)
    counts = before + Counter(after.ids())
    report("drain", **tally(ids, counts), returned_on_shutdown=returned)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    await client.close()
    await after.close()


def _returned_on_shutdown(log: str) -> int:
    for line in log.splitlines():
        if "Stopped worker:" in line:
            return int(line.split("returned_on_shutdown=")[1].split()[0])
    raise AssertionError(f"no shutdown summary in:\n{log}")
