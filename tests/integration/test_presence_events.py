"""Online/offline events to the backend (PRESENCE_EVENTS_QUEUE_URL), end to end: real servers
(embedded, and cluster mode with redis-server), moto's SQS through the emulator, real
python-socketio clients. Each test reads the events queue as a backend would (receive, delete)
and checks each user's sequence: a number missing or repeated is an event lost or sent twice.
The grace (PRESENCE_GRACE_S) and lease (PRESENCE_LEASE_S) are short to keep the tests fast."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.clients import RecordingClient
from tests.integration.helpers import eventually, metric, queue_depth, report, wait_log
from tests.processes import Process, Processes, Stack, free_port, healthz
from tests.tokens import token

pytestmark = pytest.mark.timeout(90)

GRACE_S = 1.0
LEASE_S = 2.0
ONLINE_KEYS = {"type", "user", "seq", "at"}
ROOM_KEYS = ONLINE_KEYS | {"namespace", "room"}
#: A user's online and room join written in one flush: numbered in either order.
ONLINE_AND_JOIN = ({("user_online", 1), ("room_join", 2)}, {("room_join", 1), ("user_online", 2)})


@dataclass(frozen=True)
class Event:
    """One backend event as received: its body, and its MessageGroupId (FIFO queues)."""

    body: dict[str, Any]
    group: str | None

    @property
    def user(self) -> str:
        return str(self.body["user"])

    @property
    def kind(self) -> tuple[str, int]:
        return self.body["type"], self.body["seq"]


@dataclass
class EventsQueue:
    """The backend's side of PRESENCE_EVENTS_QUEUE_URL: received events, in order."""

    sqs: Any
    name: str
    port: int
    received: list[Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/123456789012/{self.name}"

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    def create(self) -> None:
        attributes = (
            {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if self.fifo else {}
        )
        created = self.sqs.create_queue(QueueName=self.name, Attributes=attributes)["QueueUrl"]
        assert created == self.url, created

    def _receive(self) -> None:
        reply = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["MessageGroupId"],
        )
        messages = reply.get("Messages", [])
        if messages:
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )
        for message in messages:
            group = message.get("Attributes", {}).get("MessageGroupId")
            self.received.append(Event(json.loads(message["Body"]), group))

    async def wait_for(
        self, done: Callable[[list[Event]], bool], *, what: str, timeout_s: float = 30
    ) -> list[Event]:
        """Receive (and delete) until `done(received)`; fail with what did arrive."""

        def receive_until() -> None:
            deadline = time.monotonic() + timeout_s
            while not done(self.received):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"timed out after {timeout_s} s waiting for {what}; received "
                        f"{[e.body for e in self.received]}"
                    )
                self._receive()

        await asyncio.to_thread(receive_until)
        return self.received

    async def wait_event(self, user: str, kind: str, seq: int, **kw: Any) -> Event:
        """Wait for `user`'s event of type `kind` and number `seq`; return it."""
        await self.wait_for(
            lambda got: any(e.user == user and e.kind == (kind, seq) for e in got),
            what=f"{user}'s {kind} {seq}",
            **kw,
        )
        return next(e for e in self.received if e.user == user and e.kind == (kind, seq))

    def of(self, user: str) -> list[Event]:
        return [e for e in self.received if e.user == user]

    def kinds(self, user: str) -> list[tuple[str, int]]:
        return [e.kind for e in self.of(user)]

    def empty(self) -> bool:
        return queue_depth(self.sqs, self.url) == 0


def events_queue(stack: Stack, *, fifo: bool = False) -> EventsQueue:
    name = f"{stack.queue_name}-events" + (".fifo" if fifo else "")
    return EventsQueue(stack.sqs_client(), name, stack.sqs_port)


def presence_env(queue: EventsQueue, **env: str) -> dict[str, str]:
    return {
        "PRESENCE_EVENTS_QUEUE_URL": queue.url,
        "PRESENCE_GRACE_S": str(GRACE_S),
        "PRESENCE_LEASE_S": str(LEASE_S),
        "PRESENCE_COALESCE_S": "0.05",
    } | env


def start_server(
    processes: Processes, stack: Stack, name: str = "server", *, port: int | None = None, **env: str
) -> Process:
    """A server under its own name (its own log file: a restarted one keeps the first's log)."""
    port = port or stack.http_port
    process = processes.start(name, ["-m", "server"], stack.env(PORT=str(port), **env))
    process.wait_ready(
        lambda: healthz(f"http://127.0.0.1:{port}")["subscriber"], what=f"{name}'s /healthz"
    )
    return process


async def connect(url: str, user: str, **kwargs: Any) -> RecordingClient:
    """A client of `user` (its token may add claims: subscribe=[...])."""
    claims = kwargs.pop("claims", {})
    return await RecordingClient().connect(url, auth={"token": token(sub=user, **claims)}, **kwargs)


def counter(base_url: str, name: str) -> int:
    return int(healthz(base_url)["counters"].get(name, 0))


def now_ms() -> int:
    return int(time.time() * 1000)


# --- embedded mode -----------------------------------------------------------------------------
async def test_online_1_then_a_second_devices_visit_sends_nothing_and_the_last_leave_offline_2(
    processes: Processes, stack: Stack
) -> None:
    # Given one server sending presence events to a standard queue
    processes.sqs(stack)
    queue = events_queue(stack)
    queue.create()
    start_server(processes, stack, **presence_env(queue))

    # When alice's phone connects
    phone = await connect(stack.base_url, "alice")
    online = await queue.wait_event("alice", "user_online", 1)

    # and her laptop connects and leaves while the phone stays (bob's online, after the
    # server saw the laptop go, proves the laptop's count was written before it)
    laptop = await connect(stack.base_url, "alice")
    await laptop.close()
    await eventually(
        lambda: metric(stack.base_url, "relay_connected_clients") == 1,
        what="the server to see the laptop go",
    )
    bob = await connect(stack.base_url, "bob")
    await queue.wait_event("bob", "user_online", 1)

    # and then her phone leaves
    left_ms = now_ms()
    await phone.close()
    offline = await queue.wait_event("alice", "user_offline", 2)

    # Then the events' bodies are right, the offline came after the grace
    assert online.body.keys() == ONLINE_KEYS
    assert online.body["user"] == "alice"
    assert offline.body.keys() == ONLINE_KEYS
    assert offline.body["at"] >= left_ms + GRACE_S * 1000, (offline.body["at"], left_ms)
    assert online.group is None  # a standard queue

    # and it was the only one: her next connection is online 3, and nothing else of hers came
    again = await connect(stack.base_url, "alice")
    await queue.wait_event("alice", "user_online", 3)
    assert queue.kinds("alice") == [("user_online", 1), ("user_offline", 2), ("user_online", 3)]
    assert counter(stack.base_url, "presence_events_sent") == len(queue.received) == 4
    assert await asyncio.to_thread(queue.empty)
    report("offline after the grace", offline_ms_after_leave=offline.body["at"] - left_ms)
    await again.close()
    await bob.close()


async def test_presence_room_join_and_leave_send_room_events_with_namespace_in_the_users_seq(
    processes: Processes, stack: Stack
) -> None:
    # Given one server with presence in chat:* rooms, and alice connected on namespace /team
    processes.sqs(stack)
    queue = events_queue(stack)
    queue.create()
    start_server(processes, stack, **presence_env(queue, PRESENCE_ROOMS="chat:*"))
    alice = await connect(stack.base_url, "alice", namespaces=["/team"])
    await queue.wait_event("alice", "user_online", 1)

    # When she joins chat:1 and a room without presence, then leaves chat:1, then goes
    joined = await alice.sio.call("join", {"room": "chat:1"}, namespace="/team", timeout=10)
    assert joined["ok"], joined
    other = await alice.sio.call("join", {"room": "news"}, namespace="/team", timeout=10)
    assert other["ok"], other
    join = await queue.wait_event("alice", "room_join", 2)
    left = await alice.sio.call("leave", {"room": "chat:1"}, namespace="/team", timeout=10)
    assert left["ok"], left
    leave = await queue.wait_event("alice", "room_leave", 3)
    await alice.close()
    await queue.wait_event("alice", "user_offline", 4)

    # Then the room's events name its namespace and room, in her one sequence
    assert join.body.keys() == leave.body.keys() == ROOM_KEYS
    assert (join.body["namespace"], join.body["room"]) == ("/team", "chat:1")
    assert (leave.body["namespace"], leave.body["room"]) == ("/team", "chat:1")
    assert leave.body["at"] >= join.body["at"] + GRACE_S * 1000
    assert queue.kinds("alice") == [
        ("user_online", 1),
        ("room_join", 2),
        ("room_leave", 3),
        ("user_offline", 4),
    ]


async def test_a_connection_flapping_5_times_within_the_grace_sends_no_offline_online_pair(
    processes: Processes, stack: Stack
) -> None:
    # Given one server (grace 1.5 s), alice connected with a token that puts her in room lobby
    # (a presence room: a watcher's roster shows when the server has counted her gone)
    grace_s = 1.5
    processes.sqs(stack)
    queue = events_queue(stack)
    queue.create()
    env = presence_env(queue, PRESENCE_ROOMS="lobby", PRESENCE_GRACE_S=str(grace_s))
    start_server(processes, stack, **env)
    claims = {"subscribe": ["lobby"]}
    watcher = await connect(stack.base_url, "watcher")

    async def alices_connections() -> int | None:
        answer = await watcher.call("presence", {"room": "lobby"})
        assert answer["ok"], answer
        return next((m["connections"] for m in answer["members"] if m["user"] == "alice"), None)

    async def until_connections(n: int) -> None:
        deadline = time.monotonic() + 10
        while await alices_connections() != n:
            assert time.monotonic() < deadline, f"alice's connections never {n}"

    alice = await connect(stack.base_url, "alice", claims=claims)
    await until_connections(1)

    # When her connection drops and comes back 5 times, each drop counted by the server
    gaps = []
    started = time.monotonic()
    for _ in range(5):
        await alice.close()
        dropped = time.monotonic()
        await until_connections(0)
        alice = await connect(stack.base_url, "alice", claims=claims)
        await until_connections(1)
        gaps.append(time.monotonic() - dropped)
    flapped_s = time.monotonic() - started
    assert max(gaps) < grace_s, f"precondition: each reconnect within the grace ({gaps})"

    # and then it stops for good
    left_ms = now_ms()
    await alice.close()
    await queue.wait_for(lambda got: len([e for e in got if e.user == "alice"]) >= 4, what="4")
    # (an extra event of hers would be numbered before the last: its seq proves none)

    # Then she was online once (with her room join), and offline once, after the grace
    events = queue.of("alice")
    assert sorted(e.body["seq"] for e in events) == [1, 2, 3, 4]
    first, last = events[:2], events[2:]
    assert {e.body["type"] for e in first} == {"user_online", "room_join"}
    assert {e.body["type"] for e in last} == {"room_leave", "user_offline"}
    assert {e.body["seq"] for e in last} == {3, 4}
    assert min(e.body["at"] for e in last) >= left_ms + grace_s * 1000
    report("flapping", reconnects=5, flapped_s=round(flapped_s, 2), max_gap_s=round(max(gaps), 2))
    await watcher.close()


async def test_a_fifo_queue_gets_each_users_events_in_its_message_group_in_seq_order(
    processes: Processes, stack: Stack
) -> None:
    # Given one server sending to a FIFO queue (no content-based deduplication)
    processes.sqs(stack)
    queue = events_queue(stack, fifo=True)
    queue.create()
    start_server(processes, stack, **presence_env(queue, PRESENCE_ROOMS="chat:*"))

    # When alice and bob each connect, join chat:1, leave it, and go, interleaved
    users = ["alice", "bob"]
    clients = [await connect(stack.base_url, user) for user in users]
    for user in users:
        await queue.wait_event(user, "user_online", 1)
    for client in clients:
        assert (await client.call("join", {"room": "chat:1"}))["ok"]
    for user in users:
        await queue.wait_event(user, "room_join", 2)
    for client in clients:
        assert (await client.call("leave", {"room": "chat:1"}))["ok"]
        await client.close()
    await queue.wait_for(lambda got: len(got) >= 8, what="8 events")

    # Then each event's MessageGroupId is its user, and each user's come in seq order
    assert all(e.group == e.user for e in queue.received), [e.group for e in queue.received]
    for user in users:
        assert [e.body["seq"] for e in queue.of(user)] == [1, 2, 3, 4]
        assert {e.body["type"] for e in queue.of(user)[2:]} == {"room_leave", "user_offline"}
    assert await asyncio.to_thread(queue.empty)


async def test_a_server_killed_and_restarted_on_its_state_file_sends_the_owed_offline_once(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given one server keeping presence in a state file, and alice online
    processes.sqs(stack)
    queue = events_queue(stack)
    queue.create()
    env = presence_env(queue, PRESENCE_STATE_FILE=str(tmp_path / "presence.db"))
    server = start_server(processes, stack, **env)
    alice = await connect(stack.base_url, "alice")
    await queue.wait_event("alice", "user_online", 1)

    # When the server is killed with SIGKILL and started again on the same port and file,
    # and alice does not come back
    server.kill_group()
    await alice.close()
    restarted_ms = now_ms()
    restarted = start_server(processes, stack, "server-restarted", **env)
    offline = await queue.wait_event("alice", "user_offline", 2)

    # Then her offline came after the grace, from the restarted server, and once: bob's
    # online, sent after it, arrives with nothing of alice's between
    assert offline.body["at"] >= restarted_ms + GRACE_S * 1000
    await wait_log(restarted, "present when the last run ended")
    bob = await connect(stack.base_url, "bob")
    await queue.wait_event("bob", "user_online", 1)
    assert queue.kinds("alice") == [("user_online", 1), ("user_offline", 2)]
    assert counter(stack.base_url, "presence_events_sent") == 2
    assert await asyncio.to_thread(queue.empty)
    report("restart", offline_ms_after_restart=offline.body["at"] - restarted_ms)
    await bob.close()


# --- SQS refusing --------------------------------------------------------------------------------
async def test_events_made_while_their_queue_does_not_exist_wait_and_arrive_in_order_once_it_does(
    processes: Processes, stack: Stack
) -> None:
    # Given one server whose events queue does not exist yet
    processes.sqs(stack)
    queue = events_queue(stack)
    server = start_server(processes, stack, **presence_env(queue))

    # When alice connects and leaves
    alice = await connect(stack.base_url, "alice")
    await wait_log(server, "Presence events wait")
    await alice.close()
    await stack.wait_counter("presence_changes[leave]", 1)
    assert counter(stack.base_url, "presence_events_sent") == 0

    # and then the queue is created
    queue.create()

    # Then both events arrive, in order
    await queue.wait_for(lambda got: len(got) >= 2, what="2 events")
    assert queue.kinds("alice") == [("user_online", 1), ("user_offline", 2)]
    await wait_log(server, "SQS takes them again")


async def test_events_past_the_outbox_bound_are_dropped_counted_logged_and_leave_a_seq_gap(
    processes: Processes, stack: Stack
) -> None:
    # Given one server keeping at most 2 events for a queue that does not exist yet
    processes.sqs(stack)
    queue = events_queue(stack)
    env = presence_env(queue, PRESENCE_OUTBOX_MAX="2", PRESENCE_ROOMS="chat:*")
    server = start_server(processes, stack, **env)

    # When alice makes 4 events: online, join chat:1, leave it, offline
    alice = await connect(stack.base_url, "alice")
    assert (await alice.call("join", {"room": "chat:1"}))["ok"]
    await stack.wait_counter("presence_changes[join]", 2)
    assert (await alice.call("leave", {"room": "chat:1"}))["ok"]
    await alice.close()
    await stack.wait_counter("presence_changes[leave]", 2)
    await stack.wait_counter("presence_events_dropped", 2)
    await wait_log(server, "event(s) dropped, the outbox being full")

    # and then the queue is created, and alice comes back
    queue.create()
    await queue.wait_for(lambda got: len(got) >= 2, what="the 2 kept events")
    alice = await connect(stack.base_url, "alice")
    await queue.wait_event("alice", "user_online", 5)

    # Then the kept ones arrived, the dropped ones are counted, and her sequence has a gap
    kinds = queue.kinds("alice")
    assert len(kinds) == 3 and kinds[2] == ("user_online", 5), kinds
    assert set(kinds[:2]) in ONLINE_AND_JOIN, kinds
    assert counter(stack.base_url, "presence_events_dropped") == 2
    await alice.close()


# --- cluster mode --------------------------------------------------------------------------------
async def test_a_killed_servers_user_gets_one_offline_from_the_other_after_lease_and_grace(
    processes: Processes, stack: Stack
) -> None:
    # Given two servers in cluster mode (one Redis), and alice connected to server A
    processes.sqs(stack)
    queue = events_queue(stack)
    queue.create()
    redis_port = free_port()
    processes.redis(redis_port)
    env = presence_env(queue, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    ports = {}
    servers = {}
    for name in ("a", "b"):
        ports[name] = free_port()
        servers[name] = start_server(
            processes,
            stack,
            f"server-{name}",
            port=ports[name],
            ZMQ_BIND=f"tcp://127.0.0.1:{free_port()}",
            **env,
        )
    url_a, url_b = (f"http://127.0.0.1:{ports[n]}" for n in ("a", "b"))
    alice = await connect(url_a, "alice")
    await queue.wait_event("alice", "user_online", 1)

    # When server A is killed with SIGKILL
    killed_ms = now_ms()
    servers["a"].kill_group()
    await alice.close()  # its transport is gone already

    # Then server B sends her offline once the lease has lapsed and the grace is over
    offline = await queue.wait_event("alice", "user_offline", 2)
    await wait_log(servers["b"], "whose lease lapsed")
    assert offline.body["at"] >= killed_ms + GRACE_S * 1000

    # and only once: when she reconnects to B, she is online 3, with nothing between
    again = await connect(url_b, "alice")
    await queue.wait_event("alice", "user_online", 3)
    assert queue.kinds("alice") == [("user_online", 1), ("user_offline", 2), ("user_online", 3)]
    assert await asyncio.to_thread(queue.empty)
    report("cluster kill", offline_ms_after_kill=offline.body["at"] - killed_ms)
    await again.close()


async def test_events_dropped_in_cluster_mode_are_counted_once_over_all_servers(
    processes: Processes, stack: Stack
) -> None:
    # Given two servers in cluster mode keeping at most 2 events for a queue that does not
    # exist yet
    processes.sqs(stack)
    queue = events_queue(stack)
    redis_port = free_port()
    processes.redis(redis_port)
    env = presence_env(
        queue,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        PRESENCE_OUTBOX_MAX="2",
        PRESENCE_ROOMS="chat:*",
    )
    urls = []
    servers = []
    for name in ("a", "b"):
        port = free_port()
        zmq = f"tcp://127.0.0.1:{free_port()}"
        servers.append(
            start_server(processes, stack, f"server-{name}", port=port, ZMQ_BIND=zmq, **env)
        )
        urls.append(f"http://127.0.0.1:{port}")

    # When alice, on server A, makes 4 events (2 past the bound)
    alice = await connect(urls[0], "alice")
    assert (await alice.call("join", {"room": "chat:1"}))["ok"]
    await eventually(
        lambda: counter(urls[0], "presence_changes[join]") == 2, what="her 2 joins written"
    )
    assert (await alice.call("leave", {"room": "chat:1"}))["ok"]
    await alice.close()
    await eventually(
        lambda: sum(counter(url, "presence_events_dropped") for url in urls) >= 2,
        what="2 events counted as dropped",
    )

    # and the queue is created, and alice comes back (her online, sent after the kept ones,
    # is the sign that every server has looked at the outbox since the drops)
    queue.create()
    await queue.wait_for(lambda got: len(got) >= 2, what="the 2 kept events")
    alice = await connect(urls[1], "alice")
    await queue.wait_event("alice", "user_online", 5)

    # Then the 2 dropped events are counted once, on one server, and logged there
    dropped = [counter(url, "presence_events_dropped") for url in urls]
    assert sorted(dropped) == [0, 2], dropped
    logged = ["event(s) dropped" in server.log() for server in servers]
    assert sorted(logged) == [False, True], logged
    kinds = queue.kinds("alice")
    assert len(kinds) == 3 and kinds[2] == ("user_online", 5), kinds
    assert set(kinds[:2]) in ONLINE_AND_JOIN, kinds
    await alice.close()
