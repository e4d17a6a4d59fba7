"""Client helpers: listen to the relay and get every event once, in order per stream, across
reconnects, without writing the resume protocol by hand.

- :class:`RelayClient` (python-socketio's `AsyncClient`), for services and scripts;
- ``/static/relay.js`` (served by the server), the same for browsers over socket.io-client.

This package needs only python-socketio and aiohttp: ``pip install sqs-push-relay-client``.

Usage::

    async with RelayClient(url, token=token, rooms=["shop"]) as relay:
        async for event in relay:
            print(event.name, event.data)
"""

from sqs_relay_client.relay_client import Event, PresenceError, RelayClient
from sqs_relay_client.streams import Position, Recovery, Streams

__all__ = ["Event", "Position", "PresenceError", "Recovery", "RelayClient", "Streams"]
