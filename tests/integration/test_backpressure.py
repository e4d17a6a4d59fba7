"""Guarantee 4's first half on real processes: a worker holds at most one batch, and while
no server answers it takes nothing from SQS."""

from __future__ import annotations

import signal
from collections import Counter

from tests.clients import RecordingClient
from tests.integration.helpers import (
    attributes,
    eventually,
    report,
    send_async,
    wait_log,
    wait_queue_empty_async,
)
from tests.processes import Processes, Stack

BATCH = 10  # SQS_BATCH_SIZE's default


async def test_a_worker_holds_one_batch_and_takes_nothing_while_its_server_does_not_confirm(
    processes: Processes, stack: Stack
) -> None:
    # Given a worker and a connected client, then the server stopped (SIGSTOP: connected but
    # answering nothing) and three batches' worth of messages on the queue
    stack.extra.update(ACK_TIMEOUT_S="3")
    processes.sqs(stack)
    server = processes.server(stack)
    worker = processes.worker(stack, LOG_LEVEL="DEBUG")
    await wait_log(worker, "Long poll open")
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()
    server.send_signal(signal.SIGSTOP)
    try:
        ids = await send_async(
            sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(3 * BATCH)]
        )

        # When the worker receives a batch and hands it to the server
        await wait_log(worker, f"({BATCH} messages) handed to")
        handed = len(worker.log())

        # Then it holds that one batch only (the rest stays visible in SQS) until the server
        # leaves its delivery set for not confirming, and then gives the batch back
        assert attributes(sqs, stack.queue_url) == {"visible": 2 * BATCH, "invisible": BATCH}
        await wait_log(worker, "Returned 10 unconfirmed", after=handed)
        await wait_log(worker, "Waiting for server(s)", after=handed, timeout_s=10)
        await eventually(
            lambda: attributes(sqs, stack.queue_url) == {"visible": 3 * BATCH, "invisible": 0},
            what="the batch back on the queue",
        )
        # And it opened no long poll from the hand-off on: nothing more was taken
        assert "Long poll open" not in worker.log()[handed:], worker.log()[handed:]
        assert attributes(sqs, stack.queue_url) == {"visible": 3 * BATCH, "invisible": 0}
    finally:
        server.send_signal(signal.SIGCONT)

    # And once the server answers again, everything is delivered, each message once
    await wait_queue_empty_async(sqs, stack.queue_url)
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    report("one batch in hand", sent=len(ids), delivered=len(counts), most=max(counts.values()))
    assert counts == Counter(ids)
    await client.close()
