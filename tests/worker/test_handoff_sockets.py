"""The sockets the hand-off makes queue nothing for a server that is not there
(docs/guarantees.md, 4: `ZMQ_IMMEDIATE`)."""

from __future__ import annotations

import pytest
import zmq

from shared.counters import Counters
from tests.processes import free_port
from worker.handoff import DealerHandoff


def test_a_send_to_a_server_that_is_not_there_fails_at_once_instead_of_queueing() -> None:
    # Given a hand-off to an address where no server listens, and the sockets it makes
    made: list[zmq.Socket[bytes]] = []
    context = zmq.Context()
    handoff = DealerHandoff(
        counters=Counters(),
        endpoints=[f"tcp://127.0.0.1:{free_port()}"],
        ack_timeout_s=0.5,
        context=context,
        configure=made.append,
    )
    try:
        [sock] = made

        # Then a send to it is refused rather than kept for a
        # server that may come much later (a batch it would then get long after it was
        # returned to SQS and delivered by someone else)
        with pytest.raises(zmq.Again):
            sock.send(b"a batch", flags=zmq.NOBLOCK)
    finally:
        handoff.close()
        context.term()
