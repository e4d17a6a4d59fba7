"""The worker's own stop (guarantee 6, issue 10 item 9) and its start-up refusal, on real
processes.

SIGTERM ends an open long poll at once (its connection is closed) instead of waiting up to
SHUTDOWN_TIMEOUT_S for it, and every step of the stop shares one deadline. The measured
times are printed (run with -s) for the issue notes.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

from tests.clients import RecordingClient
from tests.integration.helpers import (
    SHUTDOWN_TIMEOUT_S,
    attributes,
    report,
    send_async,
    sigterm_together,
    wait_log,
    wait_queue_empty_async,
)
from tests.processes import Process, Processes, Stack, healthz

FAST_REDELIVERY = {"SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}
#: One receive's worth of messages (SQS_BATCH_SIZE's default).
BATCH = 10


def summary(process: Process) -> str:
    [line] = [line for line in process.log().splitlines() if "Stopped worker:" in line]
    return line


def counter(line: str, name: str) -> int:
    return int(line.split(f"{name}=")[1].split()[0])


async def test_an_idle_worker_in_a_20_second_long_poll_stops_at_once(
    processes: Processes, stack: Stack
) -> None:
    # Given an idle worker in a 20-second long poll (it logs, at DEBUG, when one is open)
    processes.sqs(stack)
    processes.server(stack)
    worker = processes.worker(stack, SQS_WAIT_S="20", LOG_LEVEL="DEBUG")
    await wait_log(worker, "Long poll open")

    # When it gets SIGTERM
    [(code, seconds)] = await sigterm_together(worker)

    # Then it exits cleanly well within 2 s, having ended the poll and counted it
    report("stop idle worker", exit_code=code, seconds=round(seconds, 2))
    assert code == 0, worker.log()
    assert seconds < 2.0, worker.log()
    assert counter(summary(worker), "abandoned_polls") == 1
    assert "reappear after the visibility timeout" in worker.log()


async def test_workers_stopped_under_load_lose_nothing(processes: Processes, stack: Stack) -> None:
    # Given two workers with 20-second long polls under a stream of messages
    stack.extra.update(FAST_REDELIVERY)
    processes.sqs(stack)
    processes.server(stack)
    workers = [processes.worker(stack, name=f"worker{n}", SQS_WAIT_S="20") for n in range(2)]
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    sending = asyncio.create_task(
        send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(300)])
    )
    await client.wait_for(80, timeout_s=60)

    # When both get SIGTERM mid-stream (the server keeps running)
    stopped = await sigterm_together(*workers)

    # Then each exits cleanly within SHUTDOWN_TIMEOUT_S of the signal
    report(
        "stop workers under load",
        exit_codes=[code for code, _s in stopped],
        seconds=[round(s, 2) for _c, s in stopped],
        delivered_before_stop=len(client.ids()),
    )
    assert [code for code, _s in stopped] == [0, 0]
    assert max(s for _c, s in stopped) <= SHUTDOWN_TIMEOUT_S
    lines = [summary(w) for w in workers]
    report(
        "stop workers under load",
        returned_on_shutdown=[counter(line, "returned_on_shutdown") for line in lines],
        abandoned_polls=[counter(line, "abandoned_polls") for line in lines],
    )

    # And a new worker delivers the rest, what was returned included: nothing lost, no repeat
    ids = await sending
    processes.worker(stack, name="worker-after")
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=120)
    await client.wait_for(len(ids), timeout_s=60)
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    report(
        "stop workers under load",
        sent=len(ids),
        delivered=len(counts),
        lost=len(set(ids) - set(counts)),
        duplicated=sum(c - 1 for c in counts.values()),
        duplicates_dropped=healthz(stack.base_url)["counters"].get("duplicate_dropped", 0),
    )
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    await client.close()


async def test_a_worker_refuses_an_ack_timeout_not_below_the_queues_visibility_timeout(
    processes: Processes, stack: Stack
) -> None:
    # Given the emulator's queue (VisibilityTimeout 30 s)
    processes.sqs(stack)

    # When a worker starts that may wait 30 s for a confirmation
    worker = processes.worker(stack, ACK_TIMEOUT_S="30")

    # Then it exits with status 2, naming both values, having received nothing
    code = await asyncio.to_thread(worker.popen.wait, 30)
    assert code == 2, worker.log()
    log = worker.log()
    assert "ACK_TIMEOUT_S=30.0" in log and "VisibilityTimeout (30 s)" in log, log
    assert "Long poll open" not in log


async def test_a_worker_stopped_while_its_batch_awaits_confirmation_returns_it_in_time(
    processes: Processes, stack: Stack
) -> None:
    # Given a worker that handed a batch to a server that cannot answer (stopped), and would
    # wait 20 s for its confirmation
    stack.extra.update(SQS_VISIBILITY_TIMEOUT_S="30", ACK_TIMEOUT_S="20")
    processes.sqs(stack)
    server = processes.server(stack)
    worker = processes.worker(stack, LOG_LEVEL="DEBUG")
    await wait_log(worker, "Long poll open")
    sqs = stack.sqs_client()
    server.send_signal(signal.SIGSTOP)
    try:
        await send_async(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(BATCH)])
        await wait_log(worker, f"({BATCH} messages) handed to")

        # When it gets SIGTERM
        [(code, seconds)] = await sigterm_together(worker)
    finally:
        server.send_signal(signal.SIGCONT)

    # Then it stops waiting at the deadline, returns the batch to the queue (visible at once,
    # not after the 30 s visibility timeout), counts it, and exits within SHUTDOWN_TIMEOUT_S
    report("stop worker awaiting an ack", exit_code=code, seconds=round(seconds, 2))
    assert code == 0, worker.log()
    assert seconds <= SHUTDOWN_TIMEOUT_S, worker.log()
    assert counter(summary(worker), "returned_on_shutdown") == BATCH
    assert counter(summary(worker), "delivered") == 0
    assert attributes(sqs, stack.queue_url) == {"visible": BATCH, "invisible": 0}
