"""What every concern's settings share: how a variable's text is read, and how a field says
what `.env.example` prints above it.

A field's `description` is the comment `.env.example` prints above the variable. Where the
file needs more than a line, or lets one comment cover the next variables, the field says so
with `json_schema_extra=`:

- ``comment("...")``: this longer text instead of the description (paragraphs split on "\\n");
- ``SEE_ABOVE``: no comment of its own, the one above covers it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final

from pydantic import BeforeValidator, JsonValue
from pydantic_settings import NoDecode


def _empty_is_unset(value: object) -> object:
    return None if value == "" else value


def _split_comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: Read before validation: an empty variable (`NAME=`, as `.env.example` writes it) is unset.
EmptyIsUnset = BeforeValidator(_empty_is_unset)

#: A comma-separated variable, read as a list of its non-empty parts (no JSON decoding).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_comma_list)]

#: The comment key under `json_schema_extra`; `.env.example` prints it above the variable.
COMMENT_KEY: Final = "env_comment"

#: `json_schema_extra` of a field the comment above it already covers.
SEE_ABOVE: Final[dict[str, JsonValue]] = {COMMENT_KEY: None}


def comment(text: str) -> dict[str, JsonValue]:
    """`json_schema_extra` of a field whose `.env.example` comment is longer than its
    description; "\\n" starts a new paragraph."""
    return {COMMENT_KEY: text}


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses: a host nothing beyond this machine reaches.

    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("relay.example")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
