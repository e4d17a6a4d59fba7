"""Every library internal the project relies on, as data: one :class:`Internal` per name.

A name is *internal* when it starts with an underscore, or when the library does not
document it (not in its API reference: python-socketio and python-engineio document only
what has a docstring; uvicorn documents its settings and `Server.run`/`serve`, not its
protocol classes). The records are kept per library (`socketio_internals.py`,
`engineio_internals.py`, `uvicorn_internals.py`, `other_internals.py`), the record itself
and the versions verified in `record.py`. tests/server/test_library_contract.py checks each
record against the installed libraries, and that the table in server/adapters/__init__.py's
docstring is these records.
"""

from __future__ import annotations

from server.adapters.contract.engineio_internals import ENGINEIO
from server.adapters.contract.other_internals import OTHERS
from server.adapters.contract.record import (
    ATTRIBUTE,
    BEHAVIOUR,
    CALLED,
    OVERRIDE,
    VERIFIED,
    Internal,
)
from server.adapters.contract.socketio_internals import ADMIN, SOCKETIO
from server.adapters.contract.uvicorn_internals import UVICORN

#: Every record, in the table's order.
INTERNALS: tuple[Internal, ...] = (*SOCKETIO, *ADMIN, *ENGINEIO, *UVICORN, *OTHERS)

__all__ = [
    "ATTRIBUTE",
    "BEHAVIOUR",
    "CALLED",
    "INTERNALS",
    "OVERRIDE",
    "VERIFIED",
    "Internal",
]
