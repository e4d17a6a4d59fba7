"""A structural type check that costs a dict lookup: :func:`conforms`.

`isinstance(obj, SomeProtocol)` against a `@runtime_checkable` Protocol walks the protocol's
members on every call (tens of microseconds on CPython 3.11). The server asks it for every
connect (is this engine.io socket a client owner, does its websocket carry a frame writer,
does its queue take one): about 7 % of a connect's CPU in a 2,000-client storm (py-spy). The
answer depends on the class here: each class is checked once, and its answer kept.
"""

from __future__ import annotations

from typing import Any

#: (class, protocol) -> whether instances of the class conform, from the first one checked.
_ANSWERS: dict[tuple[type, type], bool] = {}


def conforms(obj: Any, protocol: Any) -> bool:
    """`isinstance(obj, protocol)` for a runtime-checkable Protocol, checked once per class of
    `obj`: instances of one class are taken to conform alike (every class the server asks
    about sets the protocol's attributes in its `__init__`, or has them as methods)."""
    key = (type(obj), protocol)
    answer = _ANSWERS.get(key)
    if answer is None:
        answer = _ANSWERS[key] = isinstance(obj, protocol)
    return answer
