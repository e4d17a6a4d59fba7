"""The server's side of the hand-off (server/intake/handoff.py) on real ZeroMQ sockets, with a
stand-in handler: while the handler is not ready (cluster mode, Redis unreachable), pings go
unanswered, so that workers stop taking from SQS, and a batch is answered "not ready", so that
it goes to another server at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import zmq
import zmq.asyncio

from server.intake.handoff import RouterHandoff
from shared import wire
from shared.envelope import Envelope
from shared.settings import load_settings
from shared.wire import Delivery
from tests.integration.helpers import eventually
from tests.processes import free_port


@dataclass
class Handler:
    ready: bool = True
    batches: list[list[str]] = field(default_factory=list)

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        self.batches.append([d.message_id for d in deliveries])
        return [d.message_id for d in deliveries]

    def cover_visibility_timeout(self, visibility_timeout_s: float | None) -> None:
        pass


def handoff_server(endpoint: str, context: zmq.asyncio.Context, handler: Handler) -> RouterHandoff:
    return RouterHandoff(
        settings=load_settings({"ZMQ_BIND": endpoint}), handler=handler, context=context
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Handler, zmq.asyncio.Socket]]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.asyncio.Context()
    handler = Handler()
    server = handoff_server(endpoint, context, handler)
    server.bind()
    server.start()
    worker = context.socket(zmq.DEALER)
    worker.connect(endpoint)
    yield handler, worker
    worker.close(0)
    await server.close(time.monotonic() + 1)
    context.destroy(linger=0)  # term() would wait for the monitor socket, closed by its task


async def answer(worker: zmq.asyncio.Socket, frames: list[bytes]) -> bytes | None:
    await worker.send_multipart(frames)
    if not await worker.poll(500):
        return None
    kind, body = wire.decode(await worker.recv_multipart())
    return kind if kind != wire.ACK or wire.ack_ready(body) else b"not ready"


async def test_a_server_that_cannot_take_batches_says_so(
    served: tuple[Handler, zmq.asyncio.Socket],
) -> None:
    handler, worker = served
    batch = wire.deliver(1, [Delivery("a", Envelope("e", 1))])
    assert await answer(worker, wire.ping()) == wire.PONG
    assert await answer(worker, batch) == wire.ACK

    handler.ready = False
    assert await answer(worker, wire.ping()) is None
    assert await answer(worker, batch) == b"not ready"
    assert handler.batches == [["a"]]  # not even tried

    handler.ready = True
    assert await answer(worker, wire.ping()) == wire.PONG


async def test_a_worker_that_got_in_between_bind_and_start_is_counted() -> None:
    # Given a worker that retries its connect before the server has bound (workers started
    # first, as honcho does): libzmq accepts it in its own thread as soon as the bind is made
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.asyncio.Context()
    server = handoff_server(endpoint, context, Handler())
    worker = context.socket(zmq.DEALER)
    connected = worker.get_monitor_socket(zmq.EVENT_CONNECTED)
    worker.connect(endpoint)
    try:
        # When the server binds, and starts only once the worker is in
        server.bind()
        assert await connected.poll(10_000), "the worker never connected"
        server.start()

        # Then the worker is counted (it was not: its ACCEPTED came before the monitor)
        await eventually(lambda: server.workers_connected == 1, what="the worker counted")
    finally:
        connected.close(0)
        worker.close(0)
        await server.close(time.monotonic() + 1)
        context.destroy(linger=0)


async def test_closing_finishes_and_confirms_the_batch_in_hand() -> None:
    # Given a server emitting a batch, its emit held until the test lets it go
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.asyncio.Context()
    release = asyncio.Event()
    handler = HeldHandler(release=release)
    server = handoff_server(endpoint, context, handler)
    server.bind()
    server.start()
    worker = context.socket(zmq.DEALER)
    worker.connect(endpoint)
    try:
        await worker.send_multipart(wire.deliver(7, [Delivery("a", Envelope("e", 1))]))
        await asyncio.wait_for(handler.started.wait(), 10)

        # When the server is closed (the stop's drain) while the batch is in hand, and then
        # the emit ends
        closing = asyncio.create_task(server.close(time.monotonic() + 10))
        await asyncio.sleep(0)  # one turn of the loop: close() began and waits for the batch
        assert not closing.done()
        release.set()
        await asyncio.wait_for(closing, 10)

        # Then the worker got the batch's confirmation: closing the socket did not drop it
        assert await worker.poll(5_000), "no confirmation reached the worker"
        kind, body = wire.decode(await worker.recv_multipart())
        assert kind == wire.ACK
        assert wire.parse_ack(body) == (7, ["a"])
        assert handler.batches == [["a"]]
    finally:
        worker.close(0)
        context.destroy(linger=0)


@dataclass
class HeldHandler(Handler):
    """A handler whose emit waits for `release`: a batch that stays in hand."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def emit(self, deliveries: list[Delivery]) -> list[str]:
        self.started.set()
        await self.release.wait()
        return await super().emit(deliveries)
