"""A resume the history cannot serve now is answered "try again" (``retry``), with the
client's own position, not as a lost stream: the answer of the session handlers, and cluster
mode's history against a real redis-server stopped and started again."""

from __future__ import annotations

from typing import Any

import orjson
import socketio

from server.history.base import CatchUp
from server.history.local import LocalHistory
from server.history.reasons import HISTORY_UNAVAILABLE, SINCE_NOT_AN_OBJECT
from server.payload import BROADCAST_ROOM
from shared import counters as c
from shared.envelope import RESUME_RETRY
from tests.integration.helpers import eventually
from tests.server.test_cluster import Cluster, cluster, delivery, started
from tests.server.test_handlers import Relay, Transport, settled

__all__ = ["cluster"]  # the fixture, used below


class Unavailable(LocalHistory):
    """A history whose resumes cannot be served now (as Redis down makes cluster mode's)."""

    async def catch_up(self, stream: Any, since: Any, budget: int) -> CatchUp:
        return CatchUp(self.epoch, None, failure=HISTORY_UNAVAILABLE, retry=True)


def unavailable_relay() -> Relay:
    relay = Relay()
    relay.history(None, 3)
    relay.handlers._history = Unavailable(relay.replay, counters=relay.counters)
    return relay


async def test_a_connect_resume_that_cannot_be_served_now_is_try_again_at_its_own_position() -> (
    None
):
    # Given a server whose history cannot be read now, 3 events past the client's position
    relay = unavailable_relay()
    transport = Transport()
    since = {"epoch": relay.replay.epoch, "offset": 1}

    # When the client connects with a resume from offset 1
    sid, result = await relay.connect("eio1", transport, {"since": since})
    await settled()

    # Then it is answered "try again" with its own position (not the stream's newer one), it
    # is in its stream all the same, and nothing is counted as a failed recovery
    sent = [socketio.packet.Packet(encoded_packet=p.data).data for p in transport.sent]
    assert sent == [
        ["relay:recovery", {"room": None, **since, "recovered": False, RESUME_RETRY: True,
                            "replayed": 0, "reason": HISTORY_UNAVAILABLE}],
    ]  # fmt: skip
    assert result is None
    assert BROADCAST_ROOM in relay.rooms(sid)
    assert relay.counters.get(c.RECOVERY_FAILED) == 0


async def test_a_join_resume_that_cannot_be_served_now_is_try_again_and_enters_the_room() -> None:
    relay = unavailable_relay()
    sid, _ = await relay.connect("eio1", Transport())
    since = {"epoch": relay.replay.epoch, "offset": 2}

    answer = await relay.handlers.trigger_event("join", "/", sid, {"room": "shop", "since": since})

    assert answer == {"ok": True, "room": "shop", **since, "recovered": False,
                      RESUME_RETRY: True, "replayed": 0, "reason": HISTORY_UNAVAILABLE}  # fmt: skip
    assert "shop" in relay.rooms(sid)


async def test_with_redis_down_a_resume_is_try_again_and_once_it_is_back_it_is_served(
    cluster: Cluster,
) -> None:
    # Given a server of a cluster with 3 events on shop
    a = cluster.make()
    await started(a)
    await a.bus.append([delivery(n, "shop") for n in (1, 2, 3)], 300)
    await eventually(lambda: len(a.published) == 3, what="the events")
    epoch = a.replay.epoch
    since = {"epoch": epoch, "offset": 1}

    # When Redis stops, a resume from offset 1 is "try again", a malformed one still refused
    cluster.redis.stop()
    down = await a.bus.catch_up(("/", "shop"), since, 10**6)
    assert (down.retry, down.failure, down.entries) == (True, HISTORY_UNAVAILABLE, [])
    malformed = await a.bus.catch_up(("/", "shop"), "nope", 10**6)
    assert (malformed.retry, malformed.failure) == (False, SINCE_NOT_AN_OBJECT)

    # Then, with Redis back, the same resume is served: what was missed, and no failure
    cluster.processes.redis(cluster.port, name="redis-again")
    await eventually(lambda: a.bus.healthy, timeout_s=15, what="the bus reconnecting")
    served = await a.bus.catch_up(("/", "shop"), since, 10**6)
    assert (served.retry, served.failure, served.epoch) == (False, None, epoch)
    assert [orjson.loads(orjson.dumps(p))["id"] for _e, p in served.entries] == ["id-2", "id-3"]
