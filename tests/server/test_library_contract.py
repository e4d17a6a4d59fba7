"""The library internals we build on (server/adapters/contract.py) are all still there: each
name on the installed library, with the kind of use we make of it; and the table in
server/adapters/__init__.py is those records.

A library upgrade that renames or drops one of them fails here, by name, instead of
silently turning an override into dead code (tests that call our override directly would
stay green). Run it against other versions with, say,
``uv run --with 'uvicorn==0.35.0' pytest tests/server/test_library_contract.py``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import engineio
import pytest
import socketio
import urllib3.connection
import uvicorn
from botocore.endpoint import Endpoint
from botocore.hooks import HierarchicalEmitter
from botocore.httpsession import URLLib3Session
from engineio.async_socket import AsyncSocket

import server.adapters
from server.adapters.contract import (
    ATTRIBUTE,
    BEHAVIOUR,
    CALLED,
    INTERNALS,
    OVERRIDE,
    VERIFIED,
    Internal,
)


def resolve(path: str) -> Any:
    """ "module:Qualname" (or "module") -> the object."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    pass


def _socketio_server() -> Any:
    return socketio.AsyncServer(async_mode="asgi")


def _manager() -> Any:
    manager = socketio.AsyncManager()
    manager.set_server(_socketio_server())
    manager.initialize()
    return manager


def _namespace() -> Any:
    namespace = socketio.AsyncNamespace("/")
    _socketio_server().register_namespace(namespace)
    return namespace


def _websocket_protocol() -> Any:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    config = uvicorn.Config(_app, ws="websockets-sansio")
    config.load()
    return WebSocketsSansIOProtocol(config=config, server_state=ServerState(), app_state={})


#: The cheapest honest instance of each library class whose instance attributes we use:
#: built as the library builds it, so an attribute it stops setting is missing here too.
INSTANCES: dict[str, Callable[[], Any]] = {
    "socketio.async_server:AsyncServer": _socketio_server,
    "socketio.async_manager:AsyncManager": _manager,
    "socketio.async_namespace:AsyncNamespace": _namespace,
    "socketio.async_client:AsyncClient": socketio.AsyncClient,
    "engineio.base_server:BaseServer": lambda: engineio.AsyncServer(async_mode="asgi"),
    "engineio.async_server:AsyncServer": lambda: engineio.AsyncServer(async_mode="asgi"),
    "engineio.async_socket:AsyncSocket": lambda: AsyncSocket(
        engineio.AsyncServer(async_mode="asgi"), "sid"
    ),
    "engineio.packet:Packet": lambda: engineio.packet.Packet(engineio.packet.MESSAGE, "x"),
    "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol": (
        _websocket_protocol
    ),
    "uvicorn.server:Server": lambda: uvicorn.Server(uvicorn.Config(_app)),
    "botocore.endpoint:Endpoint": lambda: Endpoint("https://sqs", "sqs", HierarchicalEmitter()),
    "botocore.httpsession:URLLib3Session": URLLib3Session,
    "urllib3.connection:HTTPConnection": lambda: urllib3.connection.HTTPConnection("localhost"),
}


def _client() -> Any:
    import boto3

    return boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


INSTANCES["botocore.client:BaseClient"] = _client


def _id(internal: Internal) -> str:
    return f"{internal.owner}.{internal.name}[{internal.kind}]"


def _source(obj: Any) -> str:
    return inspect.getsource(inspect.unwrap(obj))


@pytest.mark.parametrize("internal", INTERNALS, ids=_id)
async def test_each_library_internal_we_use_is_still_there(internal: Internal) -> None:
    owner = resolve(internal.owner)
    if internal.kind == ATTRIBUTE:
        if internal.set_in:
            # assigned after __init__ (a handshake sets it): in the method that does
            assert f"self.{internal.name}" in _source(getattr(owner, internal.set_in))
        else:
            factory = INSTANCES.get(internal.owner)
            holder = factory() if factory is not None else owner
            assert hasattr(holder, internal.name), f"{internal.owner} has no {internal.name}"
        return
    member = getattr(owner, internal.name, None)
    assert callable(member), f"{internal.owner} has no method {internal.name}"
    if internal.params:
        parameters = inspect.signature(member).parameters
        missing = [p for p in internal.params if p not in parameters]
        assert not missing, f"{internal.owner}.{internal.name} takes no {missing}"
    if internal.source:
        assert internal.source in _source(member), (
            f"{internal.owner}.{internal.name} no longer does {internal.source!r}"
        )
    if internal.kind == OVERRIDE:
        ours = resolve(internal.ours)
        assert issubclass(ours, owner)
        assert internal.name in vars(ours), f"{internal.ours} does not override {internal.name}"
        assert vars(ours)[internal.name] is not inspect.getattr_static(owner, internal.name)
    else:
        assert internal.kind in (CALLED, BEHAVIOUR)


#: Our subclasses of library classes, and the documented hooks they override (the rest of
#: what they share with a library class must be a listed internal).
SUBCLASSES = (
    "server.adapters.fanout:FanoutManager",
    "server.adapters.frame_websocket:FrameWebSocket",
    "server.adapters.engineio_server:BoundedEngineIO",
    "server.adapters.socketio_server:BoundedSocketServer",
    "server.adapters.transport:HeartbeatSocket",
    "server.adapters.wsprotocol:_WebSocketProtocol",
    "server.adapters.uvicorn_server:UvicornServer",
    "server.sessions.handlers:SessionNamespace",
)
DOCUMENTED_HOOKS = {
    ("server.adapters.fanout:FanoutManager", "emit"),  # AsyncManager.emit
    ("server.adapters.fanout:FanoutManager", "get_rooms"),
    ("server.adapters.engineio_server:BoundedEngineIO", "create_queue"),
    ("server.sessions.handlers:SessionNamespace", "trigger_event"),
}


@pytest.mark.parametrize("path", SUBCLASSES)
def test_every_library_name_our_subclasses_override_is_listed(path: str) -> None:
    # (an upstream release that adds a method of the same name as one of ours would change
    # what the library calls: listed, it is checked above; unlisted, it fails here)
    ours = resolve(path)
    library_bases = [b for b in ours.__mro__[1:] if not b.__module__.startswith("server.")]
    listed = {i.name for i in INTERNALS if i.kind == OVERRIDE and i.ours == path}
    shared = {
        name
        for name in vars(ours)
        if name not in ("__init__", "__module__", "__doc__", "__annotations__")
        and not (name.startswith("__") and name != "__call__")
        and any(name in vars(base) for base in library_bases if base is not object)
    }
    assert shared - listed - {n for p, n in DOCUMENTED_HOOKS if p == path} == set()
    assert listed <= shared  # and nothing listed that we stopped overriding


def render_table(internals: tuple[Internal, ...]) -> str:
    """The table in server/adapters/__init__.py, made from the records."""
    rows = ["| library | name | kind | used in | verified | breaks if it goes |"]
    rows.append("|---|---|---|---|---|---|")
    for i in internals:
        qualname = i.owner.partition(":")[2] or i.owner
        private = i.name.startswith("_") and not i.name.startswith("__")
        kind = i.kind if i.kind == BEHAVIOUR else f"{'private' if private else 'undoc.'} {i.kind}"
        rows.append(
            f"| {i.library} | `{qualname}.{i.name}` | {kind} | {i.used_in} "
            f"| {VERIFIED[i.library]} | {i.breaks} |"
        )
    return "\n".join(rows)


def test_the_table_in_the_adapters_docstring_is_the_contract_records() -> None:
    table = render_table(INTERNALS)
    assert server.adapters.__doc__ is not None
    assert table in server.adapters.__doc__, (
        "server/adapters/__init__.py's table differs from server/adapters/contract.py; "
        "paste this in its place:\n\n" + table
    )
