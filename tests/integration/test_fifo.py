"""SQS FIFO queues end to end on moto's FIFO queue (issue 29, part 1): each message group
reaches every client in the order it was sent, through three workers (one killed with SIGKILL
mid-stream), a poison message in the middle of a group, one server or two in cluster mode.

Each test runs moto's SQS server in a process of its own (`python -m tests.integration.test_fifo
PORT`), creates a FIFO queue and its FIFO dead-letter queue (with a redrive policy) in it, and
points the server and the workers at it. That server differs from the emulator's in one way:
its ReceiveMessage holds a message group as SQS FIFO does, which moto 5.2.5 does not (read in
moto/sqs/models.py, seen with three threads receiving: 15 of 1,000 messages handed to a
second receiver while an earlier one of their group was in flight, 12 of 20 groups received
out of order). moto takes the set of groups in flight once per call, without a lock, so two
concurrent receives can split a group between them; and once a receive's visibility timeout
runs out, a group's earlier messages are skipped while its later ones are still marked in
flight and the last one goes out first. `_hold_groups_as_sqs_does` serialises the check (each
receive without waiting, under one lock, long-polled outside it) and first frees what is
visible again. Nothing else of moto, and nothing of the relay, is changed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from producer import publish_batch, send_bodies
from shared.envelope import Envelope
from tests.clients import RecordingClient
from tests.integration.helpers import attributes, report, wait_log, wait_queue_empty_async
from tests.processes import PYTHON, Process, Processes, Stack, free_port, healthz

pytestmark = pytest.mark.timeout(150)

#: Redelivery within seconds of a failed hand-off (the killed worker's batch).
FAST_REDELIVERY = {"SQS_VISIBILITY_TIMEOUT_S": "3", "ACK_TIMEOUT_S": "2"}
GROUPS = 20
PER_GROUP = 50
POISON_GROUP, POISON_AT = 7, 25  # the poison goes between messages 24 and 25 of group 7
POISON = "not json {"


@dataclass
class Fifo:
    """The FIFO queue of one test, and its FIFO dead-letter queue."""

    stack: Stack  # SQS_QUEUE_URL is the FIFO queue's
    dlq_url: str
    sqs: Any

    def dead(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["MessageGroupId"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))


def _hold_groups_as_sqs_does() -> None:
    """Make moto's ReceiveMessage hold each message group while any of its messages is in
    flight, as SQS FIFO does (see the module's docstring)."""
    from moto.sqs.models import SQSBackend

    lock = threading.Lock()
    receive = SQSBackend.receive_message

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + wait_seconds_timeout
        while True:
            with lock:
                queue = self.get_queue(queue_name)
                for message in [m for m in queue.pending_messages if m.visible]:
                    queue.pending_messages.discard(message)  # its visibility timeout ran out
                got = receive(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)  # a long poll's polling interval

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def serve(port: int) -> None:
    """moto's SQS server on loopback `port`, holding groups as SQS FIFO does, until killed."""
    from moto.server import ThreadedMotoServer

    _hold_groups_as_sqs_does()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threading.Event().wait()


def fifo_queue(processes: Processes, stack: Stack) -> Fifo:
    """moto's server (groups held as SQS does), a FIFO queue and its FIFO DLQ (redrive after 5
    receives) in it."""
    stack.extra.update(FAST_REDELIVERY)
    fifo = Stack(
        sqs_port=stack.sqs_port,
        zmq_port=stack.zmq_port,
        http_port=stack.http_port,
        queue_name=f"{stack.queue_name}.fifo",
        extra=stack.extra,
    )
    sqs = fifo.sqs_client()
    moto = processes.spawn(
        "sqs", [PYTHON, "-m", "tests.integration.test_fifo", str(stack.sqs_port)], fifo.env()
    )
    moto.wait_ready(sqs.list_queues, what="moto's SQS server")
    fifo_attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_url = sqs.create_queue(
        QueueName=f"{stack.queue_name}-dlq.fifo", Attributes=fifo_attributes
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(
        QueueName=fifo.queue_name, Attributes=fifo_attributes | {"RedrivePolicy": redrive}
    )["QueueUrl"]
    assert queue_url.endswith(f"/{fifo.queue_name}")
    return Fifo(fifo, dlq_url, sqs)


def send_interleaved(fifo: Fifo) -> list[str]:
    """GROUPS groups of PER_GROUP messages, sent round-robin across the groups (message n of
    every group, then n + 1), with the poison body in the middle of POISON_GROUP; the ids
    of the envelopes sent."""
    envelopes = [Envelope("n", {"g": g, "n": n}) for n in range(PER_GROUP) for g in range(GROUPS)]
    cut = POISON_AT * GROUPS + POISON_GROUP  # the poison goes right before {"g": 7, "n": 25}
    url = fifo.stack.queue_url

    def batch(part: list[Envelope]) -> list[str]:
        return publish_batch(
            fifo.sqs,
            url,
            part,
            group=lambda e: f"g{e.data['g']}",
            dedup_id=lambda e: f"{e.data['g']}-{e.data['n']}",
        )

    ids = batch(envelopes[:cut])
    send_bodies(fifo.sqs, url, [POISON], groups=f"g{POISON_GROUP}", dedup_ids=["poison"])
    return ids + batch(envelopes[cut:])


def check_groups(name: str, client: RecordingClient, ids: list[str]) -> dict[str, Any]:
    """Assert that `client` got each group in its send order, every id once; the figures."""
    counts = Counter(client.ids())
    order: dict[int, list[int]] = defaultdict(list)
    for event, payload in client.events:
        if event == "n":
            order[payload["data"]["g"]].append(payload["data"]["n"])
    out_of_order = [g for g, ns in order.items() if ns != sorted(ns)]
    figures = {
        "sent": len(ids),
        "delivered": len(set(counts) & set(ids)),
        "lost": len(set(ids) - set(counts)),
        "duplicated": sum(n - 1 for n in counts.values()),
        "groups_out_of_order": out_of_order,
    }
    report(name, **figures)
    for g in range(GROUPS):
        assert order[g] == list(range(PER_GROUP)), f"group {g}: {order[g]}"
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    return figures


async def kill_one_mid_stream(
    fifo: Fifo, workers: list[Process], clients: list[RecordingClient]
) -> list[str]:
    """Send the groups; SIGKILL the first worker once a client has seen a fifth of them and
    that worker has handed off a batch (its DEBUG log says so)."""
    sending = asyncio.create_task(asyncio.to_thread(send_interleaved, fifo))
    await clients[0].wait_for(GROUPS * PER_GROUP // 5, timeout_s=60)
    await wait_log(workers[0], "handed to")
    workers[0].send_signal(signal.SIGKILL)
    ids = await sending
    for client in clients:
        await client.wait_for(len(ids), timeout_s=90)
    await wait_queue_empty_async(fifo.sqs, fifo.stack.queue_url, timeout_s=60)
    for client in clients:
        await client.call("join", "barrier")
    return ids


def assert_poison_dead_lettered_in_its_group(fifo: Fifo) -> None:
    [dead] = fifo.dead()
    assert dead["Body"] == POISON
    assert dead["Attributes"]["MessageGroupId"] == f"g{POISON_GROUP}"
    assert dead["MessageAttributes"]["relay_error_code"]["StringValue"] == "not_json"
    assert attributes(fifo.sqs, fifo.stack.queue_url) == {"visible": 0, "invisible": 0}


async def test_three_workers_one_killed_every_group_in_send_order_once_and_the_poison_dead_lettered(
    processes: Processes, stack: Stack
) -> None:
    # Given a FIFO queue, one server, three workers and a client
    fifo = fifo_queue(processes, stack)
    processes.server(fifo.stack)
    workers = [processes.worker(fifo.stack, name=f"worker{n}", LOG_LEVEL="DEBUG") for n in range(3)]
    client = await RecordingClient().connect(fifo.stack.base_url)

    # When 20 groups x 50 messages are sent interleaved, with a poison body in the middle of
    # group 7, and one worker is killed with SIGKILL mid-stream
    started = time.monotonic()
    ids = await kill_one_mid_stream(fifo, workers, [client])
    seconds = time.monotonic() - started

    # Then the client got every group in its send order, every message once; the poison went
    # to the FIFO dead-letter queue in its group, and the group went on past it
    check_groups("fifo, one server", client, ids)
    assert_poison_dead_lettered_in_its_group(fifo)
    report(
        "fifo, one server",
        messages_per_s=round(len(ids) / seconds),
        seconds=round(seconds, 1),
        duplicates_dropped=healthz(fifo.stack.base_url)["counters"].get("duplicate_dropped", 0),
    )
    await client.close()


async def test_two_servers_in_cluster_mode_three_workers_one_killed_every_group_in_order_on_both(
    processes: Processes, stack: Stack
) -> None:
    # Given a FIFO queue, two servers in cluster mode (one Redis), three workers that hand
    # each batch to one of them, and a client on each server
    fifo = fifo_queue(processes, stack)
    redis_port = free_port()
    processes.redis(redis_port)
    redis = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    endpoints, urls = [], []
    for n in (1, 2):
        http_port, zmq_port = free_port(), free_port()
        env = fifo.stack.env(PORT=str(http_port), ZMQ_BIND=f"tcp://127.0.0.1:{zmq_port}", **redis)
        server = processes.start(f"server{n}", ["-m", "server"], env)
        server.wait_ready(
            lambda port=http_port: healthz(f"http://127.0.0.1:{port}")["redis"],
            what=f"server {n} with Redis",
        )
        endpoints.append(f"tcp://127.0.0.1:{zmq_port}")
        urls.append(f"http://127.0.0.1:{http_port}")
    workers = [
        processes.worker(
            fifo.stack,
            name=f"worker{n}",
            ZMQ_CONNECT=",".join(endpoints),
            LOG_LEVEL="DEBUG",
            **redis,
        )
        for n in range(3)
    ]
    clients = [await RecordingClient().connect(url) for url in urls]

    # When 20 groups x 50 messages are sent interleaved, with a poison body in the middle of
    # group 7, and one worker is killed with SIGKILL mid-stream
    ids = await kill_one_mid_stream(fifo, workers, clients)

    # Then both clients got every group in its send order, every message once, and the
    # poison went to the FIFO dead-letter queue
    for n, client in enumerate(clients, 1):
        check_groups(f"fifo, cluster, client of server {n}", client, ids)
    assert_poison_dead_lettered_in_its_group(fifo)
    # (each server appended batches to the shared feed: both took part)
    appended = [healthz(url)["counters"].get("appended", 0) for url in urls]
    report("fifo, cluster", appended_per_server=appended)
    assert min(appended) > 0
    for client in clients:
        await client.close()


async def test_one_group_arrives_in_send_order_once_and_its_rate_is_measured(
    processes: Processes, stack: Stack
) -> None:
    # Given one group of 300 messages waiting on a FIFO queue, one server and a client
    fifo = fifo_queue(processes, stack)
    processes.server(fifo.stack)
    client = await RecordingClient().connect(fifo.stack.base_url)
    count = 300
    envelopes = [Envelope("n", {"g": 0, "n": n}) for n in range(count)]
    ids = publish_batch(
        fifo.sqs, fifo.stack.queue_url, envelopes, group="g0", dedup_id=lambda e: str(e.data["n"])
    )

    # When three workers start consuming
    for n in range(3):
        processes.worker(fifo.stack, name=f"worker{n}")
    await client.wait_for(count, timeout_s=90)

    # Then the group arrives in order, once; its rate (first to last arrival at the client) is
    # what one group gets: SQS gives out its next batch only once the one in flight is deleted,
    # however many workers run
    assert [p["data"]["n"] for e, p in client.events if e == "n"] == list(range(count))
    assert client.ids() == ids
    seconds = client.received_at[-1] - client.received_at[0]
    report("fifo, one group", messages=count, seconds=round(seconds, 2),
           messages_per_s=round((count - 1) / seconds))  # fmt: skip
    await client.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
