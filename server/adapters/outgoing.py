"""Where `BoundedSocketServer` was: kept only for the imports not moved yet (server/relay.py).
The bounded queue is server/outgoing/queue.py; the servers are
server/adapters/engineio_server.py and server/adapters/socketio_server.py.
"""

from __future__ import annotations

from server.adapters.socketio_server import BoundedSocketServer

__all__ = ["BoundedSocketServer"]
