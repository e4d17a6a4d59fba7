"""The control side of the server: commands split out of batches by the emitter, the
in-process control bus, the disconnect command's handler, and the revocations it leaves."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from producer.publish import disconnect_user
from server.control.bus import ControlUnavailable, LocalControlBus
from server.control.disconnect import DEFAULT_REASON, Disconnector
from server.control.redis_bus import RedisControlBus
from server.control.redis_revocations import RedisRevocations
from server.control.revocations import LocalRevocations, issued_before
from server.history.local import LocalHistory
from server.history.replay import ReplayBuffer
from server.intake.emitter import Emitter, RoomSender
from server.metrics import ServerMetrics
from server.sessions.auth import REVOKED, Authenticator, AuthError
from shared import counters as c
from shared.counters import Counters
from shared.envelope import DISCONNECT_EVENT, DISCONNECTED_EVENT, Envelope, parse_body
from shared.settings import load_settings
from shared.wire import Delivery
from tests.integration.helpers import eventually
from tests.processes import Processes, free_port
from tests.tokens import TEST_SECRET, token


# --- the emitter ---------------------------------------------------------------------------------
class FakeSio:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, Any, Any]] = []

    async def emit(self, event: str, payload: Any, to: Any = None, namespace: str = "/") -> None:
        self.emitted.append((event, payload, to))


class FakeCommands:
    """Takes commands, or refuses them (ControlUnavailable) while `down`."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.down = False

    async def command(self, delivery: Delivery) -> None:
        if self.down:
            raise ControlUnavailable("Redis: down")
        self.taken.append(delivery.message_id)


class Subject:
    def __init__(self) -> None:
        self.counters = Counters()
        metrics = ServerMetrics(self.counters)
        self.sio = FakeSio()
        sender = RoomSender(sio=self.sio, metrics=metrics)  # type: ignore[arg-type]
        self.replay = ReplayBuffer(window_s=60, max_events=100, max_bytes=100_000)
        history = LocalHistory(self.replay, counters=self.counters)
        history.start(sender.send, on_gap=lambda: None)
        self.commands = FakeCommands()
        self.emitter = Emitter(
            settings=load_settings({}),
            history=history,
            sender=sender,
            counters=self.counters,
            metrics=metrics,
            commands=self.commands,
        )


def command(message_id: str, user: str = "alice", sent_ms: int = 1000) -> Delivery:
    return Delivery(message_id, Envelope(DISCONNECT_EVENT, {"reason": "r"}, user=user), sent_ms)


def event(message_id: str) -> Delivery:
    return Delivery(message_id, Envelope("shipped", {"n": 1}, user="alice"), 1000)


async def test_a_command_in_a_batch_is_confirmed_once_taken_and_never_enters_the_history() -> None:
    # Given an event for alice and a disconnect command for her in one batch
    subject = Subject()
    confirmed = await subject.emitter.emit([event("e1"), command("c1")])

    # Then both are confirmed, the command by the control side
    assert sorted(confirmed) == ["c1", "e1"]
    assert subject.commands.taken == ["c1"]
    # and only the event went out to clients and into alice's stream of the history
    assert [e for e, _p, _to in subject.sio.emitted] == ["shipped"]
    assert subject.replay.last_offset(("/", "relay:user:alice")) == 1
    assert subject.counters.get(c.EMITTED) == 1


async def test_a_redelivered_command_is_confirmed_again_without_being_carried_out_twice() -> None:
    subject = Subject()
    assert await subject.emitter.emit([command("c1")]) == ["c1"]
    # When SQS delivers it again (alone, then beside a new one)
    assert await subject.emitter.emit([command("c1")]) == ["c1"]
    assert sorted(await subject.emitter.emit([command("c1"), command("c2")])) == ["c1", "c2"]
    # Then each was carried out once
    assert subject.commands.taken == ["c1", "c2"]
    assert subject.counters.get(c.DUPLICATE_DROPPED) == 2


async def test_a_command_the_bus_cannot_publish_is_not_confirmed_and_is_carried_out_on_redelivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subject = Subject()
    subject.commands.down = True
    with caplog.at_level(logging.WARNING):
        confirmed = await subject.emitter.emit([event("e1"), command("c1")])
    # Then the event is confirmed, the command is not (SQS redelivers it), and it says why
    assert confirmed == ["e1"]
    assert "Command c1 not carried out (Redis: down)" in caplog.text
    # and once the bus is back, the redelivery is carried out
    subject.commands.down = False
    assert await subject.emitter.emit([command("c1")]) == ["c1"]
    assert subject.commands.taken == ["c1"]


# --- the in-process bus --------------------------------------------------------------------------
async def test_the_local_bus_runs_each_handler_of_the_kind_once_and_a_failing_one_stops_no_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalControlBus()
    got: list[tuple[str, dict[str, Any]]] = []

    async def failing(body: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    async def first(body: dict[str, Any]) -> None:
        got.append(("first", body))

    async def other(body: dict[str, Any]) -> None:
        got.append(("other", body))

    bus.on("disconnect", failing)
    bus.on("disconnect", first)
    bus.on("presence", other)
    bus.start()
    with caplog.at_level(logging.ERROR):
        await bus.publish("disconnect", {"users": ["alice"]})
    await bus.publish("unknown", {})
    await bus.close()
    assert got == [("first", {"users": ["alice"]})]
    assert "Control handler for 'disconnect' failed" in caplog.text
    assert bus.healthy is None


# --- the disconnect handler -----------------------------------------------------------------
class FakeManager:
    def __init__(self, rooms: dict[str, dict[Any, dict[str, str]]]) -> None:
        self.rooms = rooms


class RoomSio:
    """A server whose manager's room table is given; records emits and disconnects in order,
    and takes a disconnected client out of its rooms, as python-socketio does."""

    def __init__(self, rooms: dict[str, dict[Any, dict[str, str]]]) -> None:
        self.manager = FakeManager(rooms)
        self.calls: list[tuple[Any, ...]] = []

    async def emit(self, event: str, payload: Any, to: Any = None, namespace: str = "/") -> None:
        self.calls.append(("emit", event, payload, to, namespace))

    async def disconnect(self, sid: str, namespace: str = "/") -> None:
        self.calls.append(("disconnect", sid, namespace))
        for members in self.manager.rooms[namespace].values():
            members.pop(sid, None)


async def test_the_disconnect_handler_tells_then_closes_each_connection_of_its_users_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given alice on two connections of / and one of /chat, and bob on /
    sio = RoomSio(
        {
            "/": {"relay:user:alice": {"a1": "e1", "a2": "e2"}, "relay:user:bob": {"b1": "e3"}},
            "/chat": {"relay:user:alice": {"a3": "e4"}},
        }
    )
    counters = Counters()
    bus = LocalControlBus()
    revocations = LocalRevocations(window_s=60, counters=counters)
    disconnector = Disconnector(
        sio=sio,  # type: ignore[arg-type]
        bus=bus,
        revocations=revocations,
        counters=counters,
    )
    # When the command for alice comes (through the emitter's hand-off)
    with caplog.at_level(logging.INFO):
        sent_ms = int(time.time() * 1000)
        await disconnector.command(command("c1", sent_ms=sent_ms))

    # Then each of her connections got the notice, then was closed; bob's was not touched
    assert sio.calls == [
        ("emit", DISCONNECTED_EVENT, {"reason": "r"}, "a1", "/"),
        ("disconnect", "a1", "/"),
        ("emit", DISCONNECTED_EVENT, {"reason": "r"}, "a2", "/"),
        ("disconnect", "a2", "/"),
        ("emit", DISCONNECTED_EVENT, {"reason": "r"}, "a3", "/chat"),
        ("disconnect", "a3", "/chat"),
    ]
    assert (counters.get(c.DISCONNECT_COMMANDS), counters.get(c.USERS_DISCONNECTED)) == (1, 3)
    assert "Disconnect command c1: 1 user(s), 3 connection(s) closed here: r" in caplog.text
    # and her tokens issued before the command (its SentTimestamp) are revoked, not later ones
    assert await revocations.revoked("alice", issued_at=sent_ms / 1000 - 10) is True
    assert await revocations.revoked("alice", issued_at=sent_ms / 1000 + 1) is False
    assert await revocations.revoked("bob", issued_at=sent_ms / 1000 - 10) is False


async def test_a_disconnect_without_a_reason_tells_the_default_one() -> None:
    sio = RoomSio({"/": {"relay:user:alice": {"a1": "e1"}}})
    bus = LocalControlBus()
    counters = Counters()
    Disconnector(
        sio=sio,  # type: ignore[arg-type]
        bus=bus,
        revocations=LocalRevocations(window_s=60, counters=counters),
        counters=counters,
    )
    await bus.publish("disconnect", {"users": ["alice"], "reason": None})
    assert sio.calls[0][2] == {"reason": DEFAULT_REASON}


# --- revocations -------------------------------------------------------------------------------
def test_a_token_is_older_than_a_command_only_if_issued_in_an_earlier_second_or_unknown() -> None:
    assert issued_before(None, 100.5)
    assert issued_before(99, 100.5)
    # a token issued in the command's own second (a user logging in again at once) connects
    assert not issued_before(100, 100.5)
    assert not issued_before(101, 100.5)


async def test_revocations_in_memory_keep_the_newest_users_up_to_the_bound_and_count_dropped() -> (
    None
):
    counters = Counters()
    revocations = LocalRevocations(window_s=60, counters=counters, max_users=2)
    now = time.time()
    await revocations.revoke(["a", "b"], now)
    await revocations.revoke(["a"], now)  # a again: now the newest
    await revocations.revoke(["c"], now)
    assert len(revocations) == 2
    assert [await revocations.revoked(u, None) for u in ("a", "b", "c")] == [True, False, True]
    assert counters.get(c.REVOCATIONS_DROPPED) == 1


async def test_revocations_in_memory_end_with_their_window_and_are_off_at_zero() -> None:
    clock = [1000.0]
    counters = Counters()
    revocations = LocalRevocations(window_s=60, counters=counters, clock=lambda: clock[0])
    await revocations.revoke(["alice"], 1000.0)
    assert await revocations.revoked("alice", 900)
    clock[0] = 1060.0
    assert not await revocations.revoked("alice", 900)
    assert len(revocations) == 0
    off = LocalRevocations(window_s=0, counters=counters)
    await off.revoke(["alice"], time.time())
    assert not await off.revoked("alice", None)


async def test_the_authenticator_refuses_a_revoked_users_older_token_and_takes_a_newer_one() -> (
    None
):
    settings = load_settings({"JWT_SECRET": TEST_SECRET})
    counters = Counters()
    revocations = LocalRevocations(window_s=60, counters=counters)
    auth = Authenticator.from_settings(settings, revocations=revocations)
    now = int(time.time())
    await revocations.revoke(["alice"], now)
    old = auth.verify({"token": token(sub="alice", iat=now - 10)})
    none = auth.verify({"token": token(sub="alice", iat=None)})
    new = auth.verify({"token": token(sub="alice", iat=now)})
    bob = auth.verify({"token": token(sub="bob", iat=now - 10)})
    assert [await auth.revoked(i) for i in (old, none, new, bob)] == [REVOKED, REVOKED, None, None]
    assert REVOKED == "token revoked: reconnect with a new token"
    with pytest.raises(AuthError):
        auth.verify({"token": "nope"})


# --- the producer's helper ------------------------------------------------------------------
class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs)
        return {"MessageId": "m1"}


def test_disconnect_user_sends_the_command_the_worker_parses() -> None:
    sqs = FakeSqs()
    assert disconnect_user(sqs, "q", ["alice", "bob"], reason="banned") == "m1"  # type: ignore[arg-type]
    envelope = parse_body(sqs.sent[0]["MessageBody"], default_event="message")
    assert (envelope.control, envelope.users, envelope.reason) == (
        True,
        ("alice", "bob"),
        "banned",
    )


# --- cluster mode: against a real redis-server ------------------------------------------------
async def test_redis_control_bus_runs_every_servers_handler_once_for_what_came_after_its_start(
    processes: Processes,
) -> None:
    # Given one Redis, a message published before any server read the bus, then two buses
    port = free_port()
    processes.redis(port)
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    counters = Counters()
    first = RedisControlBus(settings, counters=counters)
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    first.on("disconnect", _record(got["a"]))
    first.start()
    await first.publish("disconnect", {"n": 0})  # before the second bus starts
    await eventually(lambda: len(got["a"]) == 1, what="the first bus's own message")
    second = RedisControlBus(settings, counters=counters)
    second.on("disconnect", _record(got["b"]))
    second.start()
    try:
        # When each publishes one after both started
        await eventually(lambda: bool(second.healthy), what="the second reader")
        await second.publish("disconnect", {"n": 1})
        await first.publish("disconnect", {"n": 2})
        # Then each server handled both once, in order, and the second not the earlier one
        await eventually(lambda: len(got["a"]) == 3 and len(got["b"]) == 2, what="both")
        assert got == {"a": [{"n": 0}, {"n": 1}, {"n": 2}], "b": [{"n": 1}, {"n": 2}]}
    finally:
        await first.close()
        await second.close()


async def test_with_redis_down_a_command_is_not_published_and_a_connect_is_let_through(
    processes: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a bus and revocations on a Redis that has alice revoked
    port = free_port()
    redis = processes.redis(port)
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    counters = Counters()
    bus = RedisControlBus(settings, counters=counters)
    bus.start()
    revocations = RedisRevocations(settings, counters=counters)
    now = time.time()
    await revocations.revoke(["alice"], now)
    assert await revocations.revoked("alice", now - 10) is True
    assert await revocations.revoked("alice", now + 1) is False
    await eventually(lambda: bool(bus.healthy), what="the bus's reader")
    try:
        # When Redis goes away
        redis.stop()
        # Then publishing and revoking fail (the command is then not confirmed)
        with pytest.raises(ControlUnavailable):
            await bus.publish("disconnect", {"users": ["alice"]})
        with pytest.raises(ControlUnavailable):
            await revocations.revoke(["alice"], now)
        # and a connect of alice is let through, saying why
        with caplog.at_level(logging.WARNING):
            assert await revocations.revoked("alice", now - 10) is False
        assert "letting the connect through" in caplog.text
        assert counters.get(c.REDIS_ERRORS) >= 3
        await eventually(lambda: bus.healthy is False, what="the reader to notice")
    finally:
        await bus.close()
        await revocations.close()


def _record(into: list[dict[str, Any]]) -> Any:
    async def handler(body: dict[str, Any]) -> None:
        into.append(body)

    return handler
