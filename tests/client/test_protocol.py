"""The client helper's own copy of the relay's event names (it installs without the relay)
is the server's."""

from __future__ import annotations

import sqs_relay_client.protocol as client_side

import shared.envelope as server_side


def test_the_client_helper_knows_the_relay_s_event_names_as_the_server_sends_them() -> None:
    names = (
        "RESERVED_PREFIX",
        "RECOVERY_EVENT",
        "EXPIRED_EVENT",
        "OVERFLOW_EVENT",
        "DISCONNECTED_EVENT",
        "PRESENCE_EVENT",
        "RESUME_RETRY",
    )
    assert {n: getattr(client_side, n) for n in names} == {
        n: getattr(server_side, n) for n in names
    }
