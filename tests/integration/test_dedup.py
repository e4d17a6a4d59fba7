"""Guarantee 2 forced on real processes: a redelivery of what the server already emitted.

A worker is frozen after it handed a batch over and before the server's confirmation could
reach it, the server emits the batch, and the worker is killed: its messages were emitted
but never deleted, so SQS hands them out again after the visibility timeout, for certain.
"""

from __future__ import annotations

import signal
from collections import Counter

from tests.clients import RecordingClient
from tests.integration.helpers import (
    attributes,
    report,
    send_async,
    wait_log,
    wait_queue_empty_async,
)
from tests.processes import Processes, Stack, healthz

#: A visibility timeout the worker reports in its pings, and the ack wait it must stay under.
VISIBILITY_S = 8
ACK_TIMEOUT_S = 4
#: The server's own window, made shorter than the time a redelivery takes to come back: only
#: the window a worker's pings widen it to can drop the repeat.
OWN_WINDOW_S = 1
BATCH = 10


async def test_a_batch_emitted_but_never_deleted_is_redelivered_and_dropped(
    processes: Processes, stack: Stack
) -> None:
    # Given a server whose own de-duplication window is 1 s, a worker whose queue hides a
    # received message for 8 s, and a connected client
    stack.extra.update(
        SQS_VISIBILITY_TIMEOUT_S=str(VISIBILITY_S),
        ACK_TIMEOUT_S=str(ACK_TIMEOUT_S),
        SQS_WAIT_S="20",
    )
    processes.sqs(stack)
    server = processes.server(stack, DEDUP_WINDOW_S=str(OWN_WINDOW_S))
    first = processes.worker(stack, name="first", LOG_LEVEL="DEBUG")
    await wait_log(first, "Long poll open")
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()

    # Then the worker's pings have widened the window to its visibility timeout plus the ack
    # wait: a redelivery comes at most that long after the receive that failed
    assert healthz(stack.base_url)["dedup_window_s"] == VISIBILITY_S + ACK_TIMEOUT_S

    # When the worker hands a batch to a server that cannot answer yet (stopped), is frozen
    # before the confirmation can reach it, and is killed once the server emitted the batch
    server.send_signal(signal.SIGSTOP)
    try:
        ids = await send_async(
            sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(BATCH)]
        )
        await wait_log(first, f"({BATCH} messages) handed to", timeout_s=ACK_TIMEOUT_S)
        first.send_signal(signal.SIGSTOP)
    finally:
        server.send_signal(signal.SIGCONT)
    await client.wait_for(BATCH, timeout_s=30)
    assert healthz(stack.base_url)["counters"]["emitted"] == BATCH
    first.send_signal(signal.SIGKILL)
    first.popen.wait(10)

    # Then nothing was deleted: the whole batch is still in flight in SQS
    assert attributes(sqs, stack.queue_url) == {"visible": 0, "invisible": BATCH}

    # And when another worker receives the batch again after the visibility timeout
    processes.worker(stack, name="second")
    await wait_queue_empty_async(sqs, stack.queue_url, timeout_s=60)

    # Then the server dropped every repeat, counted it, confirmed it (the queue is empty),
    # and the client got each message once
    await client.call("join", "barrier")
    counters = healthz(stack.base_url)["counters"]
    counts = Counter(client.ids())
    report(
        "redelivery forced",
        sent=len(ids),
        delivered=len(counts),
        duplicate_dropped=counters.get("duplicate_dropped", 0),
        emitted=counters.get("emitted", 0),
    )
    assert counts == Counter(ids)
    assert counters["duplicate_dropped"] == BATCH
    assert counters["emitted"] == BATCH
    await client.close()
