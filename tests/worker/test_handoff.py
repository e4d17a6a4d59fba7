"""The hand-off against a real ZeroMQ ROUTER in this process (a stand-in server)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from shared import counters as c
from shared import wire
from shared.counters import Counters
from shared.deadline import StopDeadline
from shared.envelope import Envelope
from shared.wire import Delivery
from tests.processes import free_port, wait_until
from worker.endpoints import resolve_endpoint
from worker.handoff import DealerHandoff


class Router:
    """A tiny server: answers pings, confirms every id except those in `refuse`; `silent`
    confirms nothing, `mute` answers nothing at all (a hung server)."""

    def __init__(
        self, endpoint: str, *, refuse: frozenset[str] = frozenset(), silent: bool = False
    ) -> None:
        self.endpoint = endpoint
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.bind(endpoint)
        self.refuse, self.silent = refuse, silent
        self.mute = False
        self.ready = True
        self.pings: list[dict[str, object]] = []
        self.batches: list[list[str]] = []
        #: every message that reached it, answered or not: its kind, and a batch's ids
        self.inbox: list[tuple[bytes, list[str]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(20):
                continue
            identity, *frames = self.sock.recv_multipart()
            kind, body = wire.decode(frames)
            arrived = wire.parse_deliver(body)[1] if kind == wire.DELIVER else []
            self.inbox.append((kind, [d.message_id for d in arrived]))
            if self.mute:
                continue
            if kind == wire.PING:
                self.pings.append(body)
                self.sock.send_multipart([identity, *wire.encode(wire.PONG)])
            elif kind == wire.DELIVER and not self.silent:
                batch, deliveries = wire.parse_deliver(body)
                self.batches.append([d.message_id for d in deliveries])
                ids = [d.message_id for d in deliveries if d.message_id not in self.refuse]
                if not self.ready:
                    ids = []
                self.sock.send_multipart([identity, *wire.ack(batch, ids, ready=self.ready)])

    @property
    def received(self) -> list[list[str]]:
        """The batches that reached it, answered or not."""
        return [ids for kind, ids in self.inbox if kind == wire.DELIVER]

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
def handoff(endpoint: str) -> Iterator[DealerHandoff]:
    context = zmq.Context()
    h = DealerHandoff(counters=Counters(), endpoints=[endpoint], ack_timeout_s=0.5, context=context)
    yield h
    h.close()
    context.term()


def batch(*ids: str) -> list[Delivery]:
    return [Delivery(i, Envelope("e", i)) for i in ids]


WAITING = "Waiting for server(s) at"


def test_waits_for_a_server_that_starts_late(
    handoff: DealerHandoff, endpoint: str, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    # Given no server yet, wait_ready blocks (it says so once it has waited a ping interval)
    caplog.set_level("INFO")
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(handoff.wait_ready(stop)))
    waiter.start()
    try:
        wait_until(lambda: WAITING in caplog.text, timeout_s=10, what="the waiting log line")
        assert waiter.is_alive() and not result
        # When the server binds, it returns True
        router = Router(endpoint)
        try:
            waiter.join(10)
            assert result == [True]
        finally:
            router.close()
    finally:
        stop.set()
        waiter.join(10)


def test_wait_ready_gives_up_when_stopped(handoff: DealerHandoff, stop: threading.Event) -> None:
    stop.set()
    assert handoff.wait_ready(stop) is False


def test_returns_what_the_server_confirmed(
    handoff: DealerHandoff, endpoint: str, stop: threading.Event
) -> None:
    router = Router(endpoint, refuse=frozenset({"b"}))
    try:
        assert handoff.wait_ready(stop)
        assert handoff.deliver(batch("a", "b", "c"), stop) == {"a", "c"}
    finally:
        router.close()


def test_no_confirmation_in_time_confirms_nothing(
    handoff: DealerHandoff, endpoint: str, stop: threading.Event
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
    h = DealerHandoff(
        counters=Counters(), endpoints=[endpoint, second], ack_timeout_s=2, context=context
    )
    try:
        assert h.wait_ready(stop)
        assert h.deliver(batch("a", "b"), stop) == {"b"}
    finally:
        h.close()
        context.term()
        one.close()
        two.close()


# --- a server that stops answering leaves the delivery set; the others go on -----------------


@pytest.fixture
def two(endpoint: str) -> Iterator[tuple[DealerHandoff, Router, Router]]:
    """A hand-off to two live servers (ack timeout 0.5 s), both in its delivery set."""
    second = f"tcp://127.0.0.1:{free_port()}"
    one, two = Router(endpoint), Router(second)
    context = zmq.Context()
    h = DealerHandoff(
        counters=Counters(), endpoints=[endpoint, second], ack_timeout_s=0.5, context=context
    )
    try:
        stop = threading.Event()
        wait_until(
            lambda: h.wait_ready(stop) and len(h.available) == 2, timeout_s=5, what="both servers"
        )
        assert h.available == [endpoint, second]
        yield h, one, two
    finally:
        h.close()
        context.term()
        one.close()
        two.close()


def test_a_server_that_does_not_confirm_in_time_leaves_and_the_others_go_on(
    two: tuple[DealerHandoff, Router, Router],
    endpoint: str,
    stop: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h, _one, hung = two
    # Given the second server hangs
    hung.mute = True

    # When a batch is handed off
    confirmed = h.deliver(batch("a", "b"), stop)

    # Then what the live one confirmed is confirmed, and the hung one, which got the batch,
    # leaves the delivery set for not confirming it within the ack timeout, counted
    assert confirmed == {"a", "b"}
    wait_until(lambda: hung.received == [["a", "b"]], timeout_s=10, what="the first batch")
    assert h.available == [endpoint]
    assert h.counters.get(c.SERVER_UNAVAILABLE) == 1
    assert "did not confirm batch 1 (2 messages) within 0.5 s" in caplog.text

    # And the next batch goes to the live one alone: the hung one never gets it, so there is
    # nothing to wait for, and no second ack timeout passes
    assert h.deliver(batch("c"), stop) == {"c"}
    assert "did not confirm batch 2" not in caplog.text
    # (a ping sent after that batch reaches the hung one: had the batch gone to it, it would
    # have arrived first)
    after = len(hung.inbox)
    wait_until(
        lambda: h.wait_ready(stop) and (wire.PING, []) in hung.inbox[after:],
        timeout_s=10,
        what="a later ping to reach the hung server",
    )
    assert hung.received == [["a", "b"]]
    assert h.wait_ready(stop)
    assert h.counters.get(c.SERVER_UNAVAILABLE) == 1


def test_a_server_that_answers_pings_again_rejoins(
    two: tuple[DealerHandoff, Router, Router], stop: threading.Event
) -> None:
    h, _one, hung = two
    hung.mute = True
    h.deliver(batch("a"), stop)
    assert len(h.available) == 1

    # When the hung server answers again
    hung.mute = False
    hung.refuse = frozenset({"x"})

    # Then the pings that go on between batches bring it back into the set, and from then
    # on a message is confirmed only once both confirmed it
    wait_until(
        lambda: h.wait_ready(stop) and len(h.available) == 2,
        timeout_s=5,
        what="the server to rejoin",
    )
    assert h.deliver(batch("x", "y"), stop) == {"y"}


def test_with_no_server_left_nothing_is_confirmed_and_wait_ready_blocks(
    handoff: DealerHandoff, endpoint: str, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    router = Router(endpoint)
    try:
        assert handoff.wait_ready(stop)
        router.mute = True
        assert handoff.deliver(batch("a"), stop) == set()
        assert handoff.available == []
        # backpressure: no server, so the worker waits (here until told to stop), and says so
        # once it has waited a ping interval
        assert WAITING not in caplog.text
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(handoff.wait_ready(stop)))
        waiter.start()
        wait_until(lambda: WAITING in caplog.text, timeout_s=10, what="the waiting log line")
        assert waiter.is_alive() and not result
        stop.set()
        waiter.join(10)
        assert result == [False]
    finally:
        stop.set()
        router.close()


def test_the_first_wait_goes_on_without_a_server_that_never_answers(
    endpoint: str, stop: threading.Event
) -> None:
    # Given two servers configured, one of which is not there
    absent = f"tcp://127.0.0.1:{free_port()}"
    router = Router(endpoint)
    context = zmq.Context()
    h = DealerHandoff(
        counters=Counters(), endpoints=[endpoint, absent], ack_timeout_s=0.5, context=context
    )
    try:
        # When the worker waits for them
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(h.wait_ready(stop)))
        waiter.start()
        waiter.join(30)  # only to stop a hung test

        # Then it goes on with the one that answered once the ack timeout has passed
        assert result == [True]
        assert h.available == [endpoint]
        assert h.counters.get(c.SERVER_UNAVAILABLE) == 1
        assert h.deliver(batch("a"), stop) == {"a"}
    finally:
        stop.set()
        h.close()
        context.term()
        router.close()


def test_pings_carry_the_queues_visibility_timeout(
    handoff: DealerHandoff, endpoint: str, stop: threading.Event
) -> None:
    router = Router(endpoint)
    try:
        handoff.set_visibility_timeout(30)
        assert handoff.wait_ready(stop)
        assert router.pings and all(wire.parse_ping(p) == 30.0 for p in router.pings)
    finally:
        router.close()


@pytest.mark.timeout(20)  # the wait must end long before the 60 s ack timeout and grace
def test_a_stop_cuts_the_wait_short_at_the_deadline_without_dropping_the_server(
    endpoint: str, stop: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server that takes its time (here: forever) to confirm, and an ack timeout and a
    # stopping grace of 60 s each, so that only the stop deadline can end the wait in time
    monkeypatch.setattr(StopDeadline, "STOPPING_ACK_GRACE_S", 60.0)
    router = Router(endpoint)
    h = DealerHandoff(
        counters=Counters(), endpoints=[endpoint], ack_timeout_s=60, context=zmq.Context.instance()
    )
    try:
        assert h.wait_ready(stop)
        router.mute = True
        # When the worker is stopping, with its stop deadline already reached
        stop.set()
        limit = time.monotonic()
        confirmed = h.deliver(batch("a"), stop, deadline=lambda: limit)
        # Then the wait ends at the deadline (the per-test timeout fails it otherwise), the
        # server got the batch, nothing is confirmed (the batch goes back to the queue), and
        # the server, not given its full ack timeout, stays in the set
        assert confirmed == set()
        wait_until(lambda: router.received == [["a"]], timeout_s=10, what="the batch to arrive")
        assert h.available == [endpoint]
        assert h.counters.get(c.SERVER_UNAVAILABLE) == 0
    finally:
        h.close()
        router.close()


# --- cluster mode: one server per batch ---------------------------------------------------------


@contextlib.contextmanager
def serving(endpoints: list[str], *routers: Router, **options: Any) -> Iterator[DealerHandoff]:
    """A hand-off to `endpoints` (ack timeout 2 s unless given); it and `routers` closed
    afterwards."""
    context = zmq.Context()
    h = DealerHandoff(counters=Counters(), endpoints=endpoints, context=context,
                **{"ack_timeout_s": 2, **options})  # fmt: skip
    try:
        yield h
    finally:
        h.close()
        context.term()
        for router in routers:
            router.close()


@contextlib.contextmanager
def cluster_of_two(
    first: Router, second: Router, **options: Any
) -> Iterator[tuple[DealerHandoff, Router, Router]]:
    """A cluster-mode hand-off to two stand-in servers."""
    endpoints = [first.endpoint, second.endpoint]
    with serving(endpoints, first, second, one_server=True, **options) as h:
        yield h, first, second


def another() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def test_cluster_mode_hands_each_batch_to_one_server_in_turn(
    endpoint: str, stop: threading.Event
) -> None:
    with cluster_of_two(Router(endpoint), Router(another())) as (h, one, two):
        assert h.wait_ready(stop)
        for n in range(4):
            assert h.deliver(batch(f"m{n}"), stop) == {f"m{n}"}
        # each batch went to exactly one server, and both took some
        assert sorted(one.batches + two.batches) == [["m0"], ["m1"], ["m2"], ["m3"]]
        assert len(one.batches) == len(two.batches) == 2


def test_cluster_mode_moves_a_batch_on_when_its_server_does_not_confirm(
    endpoint: str, stop: threading.Event
) -> None:
    hung = Router(endpoint, silent=True)
    with cluster_of_two(hung, Router(another()), ack_timeout_s=0.5) as (h, _hung, good):
        assert h.wait_ready(stop)
        # whichever server's turn it is, every batch is confirmed, by the one that answers
        for n in range(3):
            assert h.deliver(batch(f"m{n}"), stop) == {f"m{n}"}
        assert good.batches[-3:] == [["m0"], ["m1"], ["m2"]]
        assert h.counters.get(c.SERVER_UNAVAILABLE) >= 1
        assert h.available == [good.endpoint]


def test_a_server_that_answers_without_confirming_keeps_the_batch(
    endpoint: str, stop: threading.Event
) -> None:
    # A server that answers but confirms nothing (its emit failed) is still there: the batch
    # is not confirmed (SQS redelivers it), and not handed to another server
    refusing = [Router(e, refuse=frozenset({"a"})) for e in (endpoint, another())]
    with cluster_of_two(*refusing) as (h, one, two):
        assert h.wait_ready(stop)
        assert h.deliver(batch("a"), stop) == set()
        assert len(one.batches) + len(two.batches) == 1


def test_cluster_mode_hands_a_batch_on_at_once_when_a_server_says_it_cannot_take_it(
    endpoint: str, stop: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    # ack_timeout_s: the batch must not wait for it
    with cluster_of_two(Router(endpoint), Router(another()), ack_timeout_s=30) as (h, no, good):
        assert h.wait_ready(stop)
        no.ready = False  # a cluster server that cannot reach Redis
        for n in range(2):
            assert h.deliver(batch(f"m{n}"), stop) == {f"m{n}"}
        assert good.batches == [["m0"], ["m1"]]
        # it left on the server's word, not after the 30 s ack timeout
        assert "cannot take batches now" in caplog.text
        assert h.available == [good.endpoint]


# --- endpoints that name a host ----------------------------------------------------------------


def test_an_address_or_another_transport_stands_for_itself() -> None:
    assert resolve_endpoint("tcp://127.0.0.1:5555") == ["tcp://127.0.0.1:5555"]
    assert resolve_endpoint("tcp://[::1]:5555") == ["tcp://[::1]:5555"]
    assert resolve_endpoint("ipc:///tmp/relay.sock") == ["ipc:///tmp/relay.sock"]


def test_a_host_name_stands_for_its_addresses() -> None:
    assert resolve_endpoint("tcp://localhost:5555") == ["tcp://127.0.0.1:5555"]


def test_servers_that_a_name_gains_and_loses_are_connected_and_dropped(
    stop: threading.Event,
) -> None:
    # Given a name that resolves to one server, then to two, then to the second alone
    ports = [free_port(), free_port()]
    first, second = (f"tcp://127.0.0.1:{p}" for p in ports)
    one, two = Router(first), Router(second)
    answers = [[first], [first, second], [second]]
    name = ["tcp://relay-servers:5555"]
    with serving(
        name, one, two, one_server=True, resolve_s=0.05, resolve=lambda _name: answers[0]
    ) as h:
        assert h.wait_ready(stop)
        assert h.available == [first]
        answers.pop(0)
        wait_until(
            lambda: h.wait_ready(stop) and len(h.available) == 2, timeout_s=10, what="both servers"
        )
        answers.pop(0)
        wait_until(
            lambda: h.wait_ready(stop) and h.available == [second], timeout_s=10, what="second only"
        )
        assert h.deliver(batch("x"), stop) == {"x"}
        assert two.batches[-1] == ["x"]


def test_a_name_that_stops_resolving_keeps_its_last_addresses(
    endpoint: str, stop: threading.Event
) -> None:
    router = Router(endpoint)
    calls = []

    def resolve(_name: str) -> list[str]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("Name or service not known")
        return [endpoint]

    with serving(["tcp://relay-servers:5555"], router, resolve_s=0.01, resolve=resolve) as h:
        assert h.wait_ready(stop)
        wait_until(
            lambda: h.wait_ready(stop) and len(calls) > 2, timeout_s=10, what="failed resolutions"
        )
        assert h.available == [endpoint]
        assert h.deliver(batch("y"), stop) == {"y"}
