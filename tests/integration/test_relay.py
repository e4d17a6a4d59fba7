"""The whole path with real parts: moto's server, worker processes, uvicorn, Socket.IO clients."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shared.sqs import make_sqs_client
from tests.clients import RecordingClient
from tests.integration.helpers import send, wait_queue_empty, wait_queue_empty_async
from tests.processes import Processes, Stack, healthz, wait_until


async def test_each_message_arrives_once_with_its_event_and_data_and_the_queue_ends_empty(
    processes: Processes, stack: Stack
) -> None:
    # Given the emulator, a server, one worker and a connected client
    processes.relay(stack)
    client = await RecordingClient().connect(stack.base_url)
    sqs = make_sqs_client(stack.settings())

    # When 25 envelopes and 5 plain JSON bodies are sent with boto3
    envelopes = [{"event": "order", "data": {"n": n}} for n in range(25)]
    plain = [{"plain": n} for n in range(5)]
    ids = send(sqs, stack.queue_url, envelopes + plain)

    # Then all 30 arrive, and the queue ends empty: each was confirmed, then deleted
    await client.wait_for(30)
    await wait_queue_empty_async(sqs, stack.queue_url)

    # And, after a round trip on the client's connection (everything the server emitted
    # before its answer has arrived by then), each MessageId was received once, none twice
    await client.call("join", "barrier")
    counts = Counter(client.ids())
    assert sorted(counts) == sorted(ids)
    assert [i for i, c in counts.items() if c > 1] == []
    assert len(client.events) == 30

    # And each carries its event and data (plain bodies as the default event)
    by_id = {payload["id"]: (event, payload) for event, payload in client.events}
    for message_id, body in zip(ids, envelopes, strict=False):
        event, payload = by_id[message_id]
        assert (event, payload["data"], payload["room"]) == ("order", body["data"], None)
        assert isinstance(payload["sent_ms"], int)
    for message_id, body in zip(ids[25:], plain, strict=True):
        assert by_id[message_id][0] == "message"  # the default event
        assert by_id[message_id][1]["data"] == body

    await client.close()


async def test_three_workers_deliver_each_message_exactly_once(
    processes: Processes, stack: Stack
) -> None:
    # Given three workers polling the same queue at once
    processes.sqs(stack)
    processes.server(stack)
    for n in range(3):
        processes.worker(stack, name=f"worker{n}")
    client = await RecordingClient().connect(stack.base_url)
    sqs = make_sqs_client(stack.settings())

    # When 150 messages are sent
    ids = send(sqs, stack.queue_url, [{"event": "tick", "data": n} for n in range(150)])

    # Then every one arrives, and once the queue is empty none arrived twice
    await client.wait_for(150)
    wait_queue_empty(sqs, stack.queue_url)
    await client.call("join", "barrier")  # everything emitted before this answer has arrived
    counts = Counter(client.ids())
    assert set(counts) == set(ids)
    assert [i for i, c in counts.items() if c > 1] == []
    assert len(client.events) == 150
    await client.close()


async def test_a_room_message_reaches_only_that_room(processes: Processes, stack: Stack) -> None:
    # Given clients in room a, in room b, and in no room
    processes.relay(stack)
    in_a = await RecordingClient().connect(stack.base_url)
    in_b = await RecordingClient().connect(stack.base_url)
    nowhere = await RecordingClient().connect(stack.base_url)
    epoch = healthz(stack.base_url)["epoch"]
    # (each answer gives its stream's position: nothing was sent to either room yet)
    assert await in_a.call("join", "a") == {"ok": True, "room": "a", "epoch": epoch, "offset": 0}
    assert await in_b.call("join", "b") == {"ok": True, "room": "b", "epoch": epoch, "offset": 0}
    sqs = make_sqs_client(stack.settings())

    # When three messages go to room a, two to room b and one to everybody
    bodies = [{"event": "e", "data": f"a{n}", "room": "a"} for n in range(3)]
    bodies += [{"event": "e", "data": f"b{n}", "room": "b"} for n in range(2)]
    bodies += [{"event": "e", "data": "all"}]
    send(sqs, stack.queue_url, bodies)
    wait_until(
        lambda: healthz(stack.base_url)["counters"].get("emitted") == 6,
        timeout_s=30,
        what="6 emitted messages",
    )
    for client in (in_a, in_b, nowhere):
        await client.call("join", "barrier")

    # Then each client got exactly its room's messages plus the broadcast
    def data(client: RecordingClient) -> list[str]:
        return sorted(payload["data"] for _event, payload in client.events)

    assert data(in_a) == ["a0", "a1", "a2", "all"]
    assert data(in_b) == ["all", "b0", "b1"]
    assert data(nowhere) == ["all"]
    for client in (in_a, in_b, nowhere):
        await client.close()


@pytest.mark.parametrize("room", ["", 5, "x" * 201])
async def test_a_bad_join_gets_an_error_answer(
    processes: Processes, stack: Stack, room: Any
) -> None:
    processes.server(stack)
    client = await RecordingClient().connect(stack.base_url)
    answer = await client.call("join", room)
    assert answer["ok"] is False and "room" in answer["error"]
    await client.close()


async def test_consumer_thread_mode_runs_the_worker_inside_the_server(
    processes: Processes, stack: Stack
) -> None:
    # Given no worker process, but CONSUMER=thread with two worker threads in the server
    processes.sqs(stack)
    server = processes.server(stack, CONSUMER="thread", WORKER_THREADS="2")
    client = await RecordingClient().connect(stack.base_url)
    sqs = make_sqs_client(stack.settings())

    # When messages are sent
    ids = send(sqs, stack.queue_url, [{"event": "t", "data": n} for n in range(40)])

    # Then the server delivers them itself, once each, and deletes them
    await client.wait_for(40)
    wait_queue_empty(sqs, stack.queue_url)
    assert sorted(client.ids()) == sorted(ids)
    assert all(isinstance(p["received_ms"], int) for _e, p in client.events)
    assert healthz(stack.base_url)["workers_connected"] == 2
    await client.close()
    server.stop()
    log = server.log()
    assert "starting 2 worker thread(s) in the server process" in log
    assert log.count("Stopped worker thread") == 2
