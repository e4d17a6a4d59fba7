"""What python-socketio and python-engineio know about a client or a room, read from their
internals for the code outside this package (the emitter, the session handlers).

python-socketio has no public "is anyone in this room", "who is in this room on every
namespace", "is this client connected" or "is its transport still there"; these read its
manager's room table and engine.io's socket table (listed in this package's table,
server/adapters/__init__.py).
"""

from __future__ import annotations

from typing import Any


def has_members(sio: Any, namespace: str, room: Any) -> bool:
    """Whether anyone is in `room` of `namespace` on this server (python-socketio's own
    `get_participants` copies the whole room to say so). True for a server without a
    manager (a test double): the emit then decides."""
    manager = getattr(sio, "manager", None)
    if manager is None:
        return True
    return bool(manager.rooms.get(namespace, {}).get(room))


def member_count(sio: Any, namespace: str, room: Any) -> int:
    """How many clients are in `room` of `namespace` on this server, without copying the
    room (0 for a server without a manager)."""
    manager = getattr(sio, "manager", None)
    if manager is None:
        return 0
    return len(manager.rooms.get(namespace, {}).get(room) or ())


def room_members(sio: Any, room: Any) -> list[tuple[str, str]]:
    """(namespace, sid) of every client in `room`, on every namespace of this server: taken at
    once, so that disconnecting them while iterating is safe."""
    return [
        (namespace, sid)
        for namespace, rooms in list(sio.manager.rooms.items())
        for sid in list(rooms.get(room) or ())
    ]


def is_connected(handler: Any, sid: str, namespace: str) -> bool:
    """Whether the client `sid` of the namespace `handler` (a python-socketio namespace
    object) is connected: past its connect handler and not leaving."""
    return bool(handler.server.manager.is_connected(sid, namespace))


def client_socket(handler: Any, sid: str, namespace: str) -> Any:
    """The engine.io socket of client `sid` of the namespace `handler` (a python-socketio
    namespace object), or None once engine.io let it go."""
    server = handler.server
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    return server.eio.sockets.get(eio_sid) if eio_sid is not None else None


def transport_open(handler: Any, sid: str, namespace: str) -> bool:
    """Whether the engine.io transport of client `sid` is still there (python-socketio's
    manager keeps a sid that is still connecting even after its transport closed)."""
    socket = client_socket(handler, sid, namespace)
    return socket is not None and not socket.closed
