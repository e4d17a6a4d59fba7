"""The hand-off against a real ZeroMQ ROUTER in this process (a stand-in server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import zmq

from shared import wire
from shared.envelope import Envelope
from shared.wire import Delivery
from tests.processes import free_port
from worker.handoff import Handoff


class Router:
    """A tiny server: answers pings, confirms every id except those in `refuse`."""

    def __init__(
        self, endpoint: str, *, refuse: frozenset[str] = frozenset(), silent: bool = False
    ) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.bind(endpoint)
        self.refuse, self.silent = refuse, silent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(20):
                continue
            identity, *frames = self.sock.recv_multipart()
            kind, body = wire.decode(frames)
            if kind == wire.PING:
                self.sock.send_multipart([identity, *wire.encode(wire.PONG)])
            elif kind == wire.DELIVER and not self.silent:
                batch, deliveries = wire.parse_deliver(body)
                ids = [d.message_id for d in deliveries if d.message_id not in self.refuse]
                self.sock.send_multipart([identity, *wire.ack(batch, ids)])

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close(0)
        self.context.term()


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


@pytest.fixture
def handoff(endpoint: str) -> Iterator[Handoff]:
    context = zmq.Context()
    h = Handoff(endpoints=[endpoint], ack_timeout_s=0.5, context=context)
    yield h
    h.close()
    context.term()


def batch(*ids: str) -> list[Delivery]:
    return [Delivery(i, Envelope("e", i)) for i in ids]


def test_waits_for_a_server_that_starts_late(
    handoff: Handoff, endpoint: str, stop: threading.Event
) -> None:
    # Given no server yet, wait_ready blocks; when the server binds, it returns True
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(handoff.wait_ready(stop)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not result
    router = Router(endpoint)
    try:
        waiter.join(10)
        assert result == [True]
    finally:
        router.close()


def test_wait_ready_gives_up_when_stopped(handoff: Handoff, stop: threading.Event) -> None:
    stop.set()
    assert handoff.wait_ready(stop) is False


def test_returns_what_the_server_confirmed(
    handoff: Handoff, endpoint: str, stop: threading.Event
) -> None:
    router = Router(endpoint, refuse=frozenset({"b"}))
    try:
        assert handoff.wait_ready(stop)
        assert handoff.deliver(batch("a", "b", "c"), stop) == {"a", "c"}
    finally:
        router.close()


def test_no_confirmation_in_time_confirms_nothing(
    handoff: Handoff, endpoint: str, stop: threading.Event
) -> None:
    router = Router(endpoint, silent=True)
    try:
        assert handoff.wait_ready(stop)
        assert handoff.deliver(batch("a"), stop) == set()
    finally:
        router.close()


def test_every_server_must_confirm(endpoint: str, stop: threading.Event) -> None:
    second = f"tcp://127.0.0.1:{free_port()}"
    one, two = Router(endpoint), Router(second, refuse=frozenset({"a"}))
    context = zmq.Context()
    h = Handoff(endpoints=[endpoint, second], ack_timeout_s=2, context=context)
    try:
        assert h.wait_ready(stop)
        assert h.deliver(batch("a", "b"), stop) == {"b"}
    finally:
        h.close()
        context.term()
        one.close()
        two.close()
