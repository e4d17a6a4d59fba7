"""Two servers, one killed: the worker drops the dead one from its delivery set and goes on
with the live one, instead of stopping both (issue 10, item 10).

Every server listed in ZMQ_CONNECT gets every message while it answers; one that misses
ACK_TIMEOUT_S leaves the set (counted as `server_unavailable`) until it answers a ping again.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

from tests.clients import RecordingClient
from tests.integration.helpers import report, send_async, wait_log, wait_queue_empty_async
from tests.processes import Process, Processes, Stack, healthz, wait_until

FAST_REDELIVERY = {"SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}


def second_server(processes: Processes, stack: Stack, name: str) -> Process:
    """`processes.server` for a second server: its own log name, ports from `stack`."""
    process = processes.start(name, ["-m", "server"], stack.env())
    wait_until(
        lambda: process.check_alive() or healthz(stack.base_url)["subscriber"],
        timeout_s=30,
        what=f"{name}'s /healthz",
    )
    return process


async def test_one_of_two_servers_killed_the_other_gets_everything_once_and_the_queue_drains(
    processes: Processes, stack: Stack
) -> None:
    # Given two servers on their own ports, one queue, and two workers that feed both
    stack.extra.update(FAST_REDELIVERY)
    other = Stack(sqs_port=stack.sqs_port, queue_name=stack.queue_name, extra=stack.extra)
    both = f"tcp://127.0.0.1:{stack.zmq_port},tcp://127.0.0.1:{other.zmq_port}"
    processes.sqs(stack)
    doomed = processes.server(stack)
    await asyncio.to_thread(second_server, processes, other, "server-b")
    workers = [processes.worker(stack, name=f"worker{n}", ZMQ_CONNECT=both) for n in range(2)]
    doomed_client = await RecordingClient().connect(stack.base_url)
    client = await RecordingClient().connect(other.base_url)
    sqs = stack.sqs_client()

    # When 300 messages flow and the first server is killed with SIGKILL part-way
    sending = asyncio.create_task(
        send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(300)])
    )
    await client.wait_for(60, timeout_s=60)
    doomed.popen.send_signal(signal.SIGKILL)
    doomed.popen.wait(10)
    before_kill = len(doomed_client.ids())
    ids = await sending

    # Then the live server's client gets every message, once, and the queue drains
    await client.wait_for(len(ids), timeout_s=60)
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=60)
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    unavailable = [w.log().count("leaves the delivery set") for w in workers]
    report(
        "two servers, one killed",
        sent=len(ids),
        delivered_by_the_live_one=len(counts),
        lost=len(set(ids) - set(counts)),
        duplicated=sum(c - 1 for c in counts.values()),
        dead_ones_client_had=before_kill,
        server_left_the_set=unavailable,
        duplicates_dropped=healthz(other.base_url)["counters"].get("duplicate_dropped", 0),
    )
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1

    # And each worker that tried the dead server said so, once, and counted it
    for worker in workers:
        worker.stop()
    for worker, left in zip(workers, unavailable, strict=True):
        [summary] = [line for line in worker.log().splitlines() if "Stopped worker:" in line]
        assert f"server_unavailable={left}" in summary, summary
    assert all(left <= 1 for left in unavailable) and any(unavailable), unavailable
    await client.close()
    await doomed_client.close()


async def test_a_hung_server_leaves_after_the_ack_timeout_and_rejoins_once_it_answers(
    processes: Processes, stack: Stack
) -> None:
    # Given two servers, a client on each, and a worker that feeds both
    stack.extra.update(FAST_REDELIVERY)
    other = Stack(sqs_port=stack.sqs_port, queue_name=stack.queue_name, extra=stack.extra)
    both = f"tcp://127.0.0.1:{stack.zmq_port},tcp://127.0.0.1:{other.zmq_port}"
    processes.sqs(stack)
    hung = processes.server(stack)
    await asyncio.to_thread(second_server, processes, other, "server-b")
    worker = processes.worker(stack, ZMQ_CONNECT=both)
    hung_client = await RecordingClient().connect(stack.base_url)
    client = await RecordingClient().connect(other.base_url)
    await wait_log(worker, f"Server at tcp://127.0.0.1:{other.zmq_port} is ready")
    sqs = stack.sqs_client()

    try:
        # When the first server hangs (SIGSTOP: its connections stay open, it answers nothing)
        # and 50 messages arrive
        hung.popen.send_signal(signal.SIGSTOP)
        first = await send_async(
            sqs, stack.queue_url, [{"event": "a", "data": n} for n in range(50)]
        )

        # Then the live server's client gets them all (after one ack timeout), and the worker
        # says the hung one left its delivery set
        await client.wait_for(len(first), timeout_s=30)
        await wait_log(worker, "leaves the delivery set")
    finally:
        hung.popen.send_signal(signal.SIGCONT)

    # When it answers again, it rejoins, and what comes next reaches the clients of both
    await wait_log(worker, "rejoins the delivery set")
    second = await send_async(sqs, stack.queue_url, [{"event": "b", "data": n} for n in range(50)])
    await client.wait_for(len(first) + len(second), timeout_s=30)
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=60)
    await asyncio.to_thread(
        wait_until,
        lambda: set(second) <= set(hung_client.ids()),
        timeout_s=30,
        what="the rejoined server's client to get the second 50",
    )
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    report(
        "two servers, one hung then back",
        sent=len(first) + len(second),
        live_ones_client=len(counts),
        hung_ones_client=len(set(hung_client.ids())),
        hung_ones_client_of_the_first_50=len(set(first) & set(hung_client.ids())),
    )
    assert set(counts) == set(first) | set(second)
    assert max(counts.values()) == 1
    await client.close()
    await hung_client.close()
