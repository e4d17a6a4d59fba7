"""The Python helper resumes again, backing off, a stream whose resume the server answered
"try again" (``retry``: its history could not be read, nothing is known to be lost), and
never tells the app to resync for it: it keeps the stream's own position, takes only the event
right after it meanwhile, and reports the resume once it is served.

python-socketio's client is faked (the Socket.IO boundary): tests/client/test_user_streams.py's
scripted server."""

from __future__ import annotations

from typing import Any

import pytest
import sqs_relay_client.protocol as client_side
from sqs_relay_client import Recovery, Streams

import shared.envelope as server_side
from tests.client.test_user_streams import FakeServerSocket, answer, event, fake, faked, taken
from tests.integration.helpers import eventually

__all__ = ["fake"]  # the fixture, used below

TRY_AGAIN = {"recovered": False, "retry": True, "replayed": 0, "reason": "unavailable"}


def test_the_helper_knows_the_try_again_key_as_the_server_sends_it() -> None:
    assert client_side.RESUME_RETRY == server_side.RESUME_RETRY == "retry"


def test_a_try_again_answer_keeps_the_position_and_only_the_next_offset_is_taken() -> None:
    # Given a stream at offset 5
    streams = Streams()
    assert streams.accept({"room": "shop", "epoch": "e1", "offset": 5, "id": "a"})

    # When its resume is answered "try again" (with a position the server might give)
    assert streams.answered("shop", {"epoch": "e1", "offset": 9, **TRY_AGAIN}) is None

    # Then it keeps its own position, and takes 6 but not 8 (above a gap), nor its id later
    assert streams.retrying("shop")
    assert streams.since("shop") == {"epoch": "e1", "offset": 5}
    assert not streams.accept({"room": "shop", "epoch": "e1", "offset": 8, "id": "h"})
    assert streams.accept({"room": "shop", "epoch": "e1", "offset": 6, "id": "f"})
    assert not streams.accept({"room": "shop", "epoch": "e2", "offset": 7, "id": "g"})
    # and once a resume is served, 7 and 8 come (the replay) and are taken
    served = {"epoch": "e1", "offset": 8, "recovered": True, "replayed": 2}
    assert streams.accept({"room": "shop", "epoch": "e1", "offset": 7, "id": "g"})
    assert streams.accept({"room": "shop", "epoch": "e1", "offset": 8, "id": "h"})
    assert streams.answered("shop", served) == Recovery("shop", True, 2)
    assert not streams.retrying("shop")


class TryAgainServer(FakeServerSocket):
    """Answers the first `refusals` joins with a resume "try again", then serves them."""

    refusals = 2

    async def call(self, event: str, data: Any, **_kw: Any) -> Any:
        self.calls.append((event, data))
        since = data["since"]
        head = {"ok": True, "room": data["room"], **(since or {"epoch": "e1", "offset": 0})}
        if since is None:
            return head
        if self.refusals > 0:
            self.refusals -= 1
            return head | TRY_AGAIN
        return head | {"recovered": True, "replayed": 0}


@pytest.fixture
def try_again(monkeypatch: pytest.MonkeyPatch) -> list[FakeServerSocket]:
    made: list[FakeServerSocket] = []

    def factory(**options: Any) -> FakeServerSocket:
        made.append(TryAgainServer(**options))
        return made[-1]

    monkeypatch.setattr("socketio.AsyncClient", factory)
    return made


async def test_a_join_answered_try_again_is_joined_again_with_its_own_position_until_served(
    try_again: list[FakeServerSocket],
) -> None:
    # Given a client in room shop at offset 4
    recoveries: list[Recovery] = []
    client, sio = faked(try_again, rooms=["shop"], on_recovery=recoveries.append,
                        reconnection_delay=0.01, reconnection_delay_max=0.02)  # fmt: skip
    client.streams.seed("shop", {"epoch": "e1", "offset": 4})

    # When it connects and the server answers its join "try again" twice
    await client.connect()

    # Then it joins again from offset 4 each time, and reports only the served resume
    await eventually(lambda: len(recoveries) == 1, what="the served resume")
    assert [request["since"] for _e, request in sio.calls] == [{"epoch": "e1", "offset": 4}] * 3
    assert recoveries == [Recovery("shop", True, 0)]
    await client.close()


async def test_a_connect_answered_try_again_connects_again_from_its_own_positions_until_served(
    fake: list[FakeServerSocket],
) -> None:
    # Given a client at room-less offset 5 and offset 2 on alice's stream
    recoveries: list[Recovery] = []
    client, sio = faked(fake, on_recovery=recoveries.append,
                        reconnection_delay=0.01, reconnection_delay_max=0.02)  # fmt: skip
    alice = "relay:user:alice"
    sio.on_connect.append([answer(alice, 2), answer(None, 5)])
    await client.connect()

    # When its transport drops and the resume is answered "try again" for both streams (the
    # room-less one with a live event above a gap meanwhile), then served on the next connect
    sio.on_connect.append([answer(alice, 2, **TRY_AGAIN), answer(None, 5, **TRY_AGAIN),
                           event(None, 7, "above a gap")])  # fmt: skip
    sio.on_connect.append([event(None, 6, "six"), event(None, 7, "seven"),
                           answer(alice, 2, recovered=True, replayed=0),
                           answer(None, 7, recovered=True, replayed=2)])  # fmt: skip
    await sio.drop_and_reconnect()

    # Then it connects again by itself, presenting the same positions, and the app gets the
    # missed events once, in order, and only the served resumes
    await eventually(lambda: len(sio.auths) == 3, what="the connect again")
    assert sio.auths[2]["since"] == sio.auths[1]["since"] == {"epoch": "e1", "offset": 5}
    assert sio.auths[2]["streams"] == {alice: {"epoch": "e1", "offset": 2}}
    await eventually(lambda: len(recoveries) == 2, what="the served resumes")
    assert recoveries == [Recovery(alice, True, 0), Recovery(None, True, 2)]
    assert await taken(client) == [(None, "six"), (None, "seven")]
    await client.close()
