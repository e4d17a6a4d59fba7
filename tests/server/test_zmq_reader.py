"""The hand-off's receive on a plain ZeroMQ socket (server/intake/zmq_reader.py), on real
sockets over TCP loopback: nothing queued is missed, whether it came before the wait, during
it, or in a burst that the descriptor signals once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import zmq

from server.intake.zmq_reader import SocketReader
from tests.processes import free_port

Pair = tuple[SocketReader, "zmq.Socket[bytes]", Callable[[], None]]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    context = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    receiver = context.socket(zmq.PULL)
    receiver.bind(endpoint)
    sender = context.socket(zmq.PUSH)
    sender.connect(endpoint)
    reader = SocketReader(receiver)
    yield reader, sender, reader.close
    reader.close()
    sender.close(linger=0)
    receiver.close(linger=0)
    context.term()


async def test_a_message_queued_before_the_wait_is_received_at_once(pair: Pair) -> None:
    reader, sender, _close = pair
    sender.send_multipart([b"a", b"1"])
    assert await asyncio.wait_for(reader.recv_multipart(), 5) == [b"a", b"1"]


async def test_a_message_sent_during_the_wait_ends_it(pair: Pair) -> None:
    reader, sender, _close = pair
    receiving = asyncio.create_task(reader.recv_multipart())
    await asyncio.sleep(0)  # one pass: the task's first step finds nothing and waits
    assert not receiving.done()
    sender.send(b"late")
    assert await asyncio.wait_for(receiving, 5) == [b"late"]


async def test_every_message_of_a_burst_is_received_and_in_order(pair: Pair) -> None:
    reader, sender, _close = pair
    received: list[bytes] = []

    async def take(n: int) -> None:
        for _ in range(n):
            received.extend(await reader.recv_multipart())
            await asyncio.sleep(0)  # other work between receives, as the hand-off's emits

    taking = asyncio.create_task(take(2_000))
    for n in range(2_000):
        sender.send(b"%d" % n)
        if n % 500 == 0:
            await asyncio.sleep(0.01)  # not a sync point: let it drain and wait, then send more
    await asyncio.wait_for(taking, 10)
    assert received == [b"%d" % n for n in range(2_000)]


async def test_interrupt_ends_the_wait_with_cancelled_error_and_close_is_idempotent(
    pair: Pair,
) -> None:
    reader, _sender, close = pair
    receiving = asyncio.create_task(reader.recv_multipart())
    await asyncio.sleep(0)  # one pass: the task's first step finds nothing and waits
    assert not receiving.done()
    reader.interrupt()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    close()
    close()
