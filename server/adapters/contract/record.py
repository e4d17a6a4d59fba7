"""What a contract record is: one library internal we use, the kinds of use, and the
versions each library was verified on (server/adapters/contract/__init__.py collects the
records)."""

from __future__ import annotations

from dataclasses import dataclass

#: The kinds of use, and what the contract test checks for each.
OVERRIDE = "method overridden"  # callable on the library class; ours defines its own
CALLED = "method called"  # callable on the library class, taking `params`
ATTRIBUTE = "attribute"  # on a real instance (or class, or module), or assigned in `source`
BEHAVIOUR = "behaviour"  # the library function `name` of `owner` does what `source` says

#: The versions checked: the lowest that the contract test passes on (names, signatures and
#: source snippets: `uv run --with LIB==X pytest tests/server/test_library_contract.py`), and
#: the installed one (uv.lock), on which the whole test suite runs. pyproject.toml's bounds.
VERIFIED = {
    "python-socketio": "5.18.0-5.18.1",  # pending_connect: 5.18.0
    "python-engineio": "4.11.0-4.15.1",
    "uvicorn": "0.53.0-0.54.0",
    "websockets": "13.0-17.4",
    "botocore": "1.34.0-1.43.117",
    "urllib3": "2.0.0-2.8.0",
}

#: What breaks, said once for the records of both engine.io and uvicorn that carry frames.
NO_FRAMES = "no direct frame path: every packet goes through the writer task"


@dataclass(frozen=True, slots=True)
class Internal:
    """One library internal we use.

    `owner` is "module:Qualname" of the library class (or module) that has `name`; `used_in`
    where we use it (paths under server/ unless they say worker/ or client/); `ours`
    "module:Qualname" of our subclass that overrides it; `params` the parameters we pass or
    receive by name; `source` what the library's source of `name` must contain (a behaviour
    we rely on); `set_in` the library method that assigns an attribute set after `__init__`.
    """

    library: str
    owner: str
    name: str
    kind: str
    used_in: str
    breaks: str
    ours: str = ""
    params: tuple[str, ...] = ()
    source: str = ""
    set_in: str = ""
