"""The message envelope: how an SQS body becomes a Socket.IO event.

A body that is a JSON object with an ``"event"`` key and no keys beyond
``event``/``data``/``room``/``user``/``namespace`` is an envelope; any other JSON value is the
``data`` of the default event. An SNS notification (an SNS subscription without raw message
delivery) is unwrapped first: its ``Message`` is the body. Bodies that can never be delivered
raise :class:`DecodeError` with a short ``code`` (for counters and the dead-letter queue) and a
``reason`` a person can act on.

>>> envelope = parse_body('{"event": "order", "data": {"id": 7}, "room": "shop"}', default_event="")
>>> envelope.event, envelope.data, envelope.room, envelope.namespace
('order', {'id': 7}, 'shop', '/')
>>> envelope = parse_body('[1, 2]', default_event="message")
>>> envelope.event, envelope.data, envelope.room
('message', [1, 2], None)
>>> parse_body('{"event": "shipped", "user": ["alice", "bob"]}', default_event="message").rooms
('relay:user:alice', 'relay:user:bob')
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENVELOPE_KEYS = frozenset({"event", "data", "room", "user", "namespace", "key", "version"})

#: Event names Socket.IO itself uses; a producer must not fake them.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
#: Events the relay itself sends to clients start with this.
RESERVED_PREFIX = "relay:"
#: The connect answer, to a client that connects with ``since`` in its auth
#: (docs/protocol.md, "Replay on reconnect"): one per stream the server subscribed it to (its
#: user's stream, its token's rooms), then, last, its room-less stream's: each stream's
#: position, and what came of its resume.
RECOVERY_EVENT = f"{RESERVED_PREFIX}recovery"
#: The key that marks a resume answer (relay:recovery, or a join's) as "try again": ``{"recovered":
#: false, "retry": true, "reason", "epoch", "offset"}``, the position the client's own. The history
#: could not be read (cluster mode, Redis down) and nothing is known to be lost: the client
#: resumes again from its own position, backing off, instead of resyncing.
RESUME_RETRY = "retry"
#: Sent just before the server disconnects a client whose token expired.
EXPIRED_EVENT = f"{RESERVED_PREFIX}expired"
#: Sent just before the server disconnects a client too slow to read what it is sent.
OVERFLOW_EVENT = f"{RESERVED_PREFIX}overflow"
#: Sent just before the server disconnects a client whose user a backend disconnected (a
#: :data:`DISCONNECT_EVENT` command): ``{"reason": ...}``. The helpers do not reconnect after it.
DISCONNECTED_EVENT = f"{RESERVED_PREFIX}disconnected"
#: To the members of a presence room (PRESENCE_ROOMS): who joined and who left, gathered
#: over PRESENCE_COALESCE_S.
PRESENCE_EVENT = f"{RESERVED_PREFIX}presence"

#: The one reserved event a producer may send, a command to the relay rather than an event
#: for clients: ``{"event": "relay:disconnect", "user": "alice" | [...], "data": {"reason":
#: "logged out"}}`` closes every connection of each user on every server (docs/producing.md).
#: Only with ``user``; no ``room``, namespace ``/`` (it covers every namespace); ``data`` null
#: or an object with an optional string ``reason`` of at most :data:`MAX_REASON_LENGTH`.
DISCONNECT_EVENT = f"{RESERVED_PREFIX}disconnect"
#: No disconnect reason is longer.
MAX_REASON_LENGTH = 200

#: A user's own stream is the room ``relay:user:<id>``: the server enters each connection of
#: the user (its token's ``sub``) into it, and no client can join it (the prefix is reserved).
USER_STREAM_PREFIX = f"{RESERVED_PREFIX}user:"
#: No room name a client joins is longer (a user's stream included).
MAX_ROOM_LENGTH = 200
#: No user id is longer: its stream's name is at most MAX_ROOM_LENGTH.
MAX_USER_LENGTH = MAX_ROOM_LENGTH - len(USER_STREAM_PREFIX)

#: Deeper JSON is refused: python-socketio and json.dumps recurse once per level, and a body
#: that decodes here must not blow the stack later, in the server, where it could not be
#: dead-lettered.
MAX_DEPTH = 100

#: SQS's own ceiling for a message body (1 MiB since August 2025).
SQS_MAX_BYTES = 1_048_576


class DecodeError(ValueError):
    """The body can never become an event (logged, counted, dead-lettered).

    ``code`` is one of ``not_utf8``, ``too_large``, ``not_json``, ``not_finite``,
    ``bad_number``, ``too_deep``, ``bad_sns``, ``bad_envelope``, ``bad_attributes``,
    ``too_many_rooms`` (rooms and users together), ``routing_conflict``; ``reason`` is the
    sentence for people.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


#: No room list (nor user list) is longer than this, whatever `MAX_MESSAGE_ROOMS` says (its
#: upper bound): each room and each user is its own emit and replay stream.
MAX_ROOMS = 10_000

#: Python refuses to turn a longer digit string into an int (CPython's default
#: `sys.get_int_max_str_digits()`); a body with one could never be decoded by the server.
MAX_INT_DIGITS = 4300

#: The SQS (and SNS) message attributes that may carry routing, for producers that send raw
#: payloads. A `room` (`user`) attribute of type ``String.Array`` holds a JSON array of rooms
#: (users).
ROUTING_ATTRIBUTES = ("event", "room", "user", "namespace")
#: The routing attributes that may name several targets.
_LISTS = ("room", "user")


def user_stream(user: str) -> str:
    """The room of a user's own stream.

    >>> user_stream("alice")
    'relay:user:alice'
    """
    return f"{USER_STREAM_PREFIX}{user}"


def user_error(user: object) -> str | None:
    """Why `user` is not a user id (a non-empty string of at most :data:`MAX_USER_LENGTH`
    characters, none of them a control character), or None. Never raises."""
    if not isinstance(user, str) or not user:
        return f"a user must be a non-empty string, got {user!r:.80}"
    if len(user) > MAX_USER_LENGTH:
        return f"a user id is at most {MAX_USER_LENGTH} characters, got {len(user)}"
    if _CONTROL.search(user):
        return f"a user id must not hold control characters, got {user!r:.80}"
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What to emit: event name, JSON data, room(s), Socket.IO namespace, user(s).

    ``room`` is None, one room, or a tuple of rooms (a JSON list in the body becomes a tuple);
    ``user`` likewise, with user ids: each user's stream (:func:`user_stream`) is one more
    target. With neither, the event goes to every client of the namespace.

    ``key`` names the entity the event is the state of (an order id), within each state room
    (STATE_ROOMS) it goes to: the room keeps the latest event per key. ``version`` (an integer)
    orders one key's states: an event whose version is not above the one a state room holds
    for its key is dropped from that room, so that a late or repeated message never rolls its
    state back.
    """

    event: str
    data: Any
    room: str | tuple[str, ...] | None = None
    namespace: str = "/"
    user: str | tuple[str, ...] | None = None
    key: str | None = None
    version: int | None = None
    _targets: tuple[str | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.event != DISCONNECT_EVENT:
            _check_event(self.event)
        object.__setattr__(self, "room", _targets_of("room", self.room, _check_room))
        object.__setattr__(self, "user", _targets_of("user", self.user, _check_user))
        if not isinstance(self.namespace, str) or not self.namespace.startswith("/"):
            raise DecodeError(
                "bad_envelope",
                "envelope field 'namespace' must be a string starting with '/', "
                f"got {self.namespace!r:.80}",
            )
        if self.event == DISCONNECT_EVENT:
            _check_disconnect(self)
        _check_state(self.key, self.version)
        rooms = _as_tuple(self.room)
        users = tuple(user_stream(user) for user in _as_tuple(self.user))
        object.__setattr__(self, "_targets", rooms + users or (None,))

    @property
    def rooms(self) -> tuple[str | None, ...]:
        """The emit targets, a stream each: each room, then each user's stream
        (``relay:user:<id>``); or ``(None,)`` for every client of the namespace."""
        return self._targets

    @property
    def users(self) -> tuple[str, ...]:
        """The user ids the envelope targets (none: empty)."""
        return _as_tuple(self.user)

    @property
    def control(self) -> bool:
        """A command to the relay (:data:`DISCONNECT_EVENT`), not an event for clients: it
        never enters the replay history."""
        return self.event == DISCONNECT_EVENT

    @property
    def reason(self) -> str | None:
        """A disconnect command's reason (None: none given)."""
        return self.data.get("reason") if isinstance(self.data, dict) else None

    def to_body(self) -> str:
        """The SQS message body of this envelope, which :func:`parse_body` turns back into it.

        Strict JSON, checked by the worker's own rules, so that a producer learns at once what
        the worker would dead-letter: :class:`DecodeError` with the code the worker would give
        (``not_finite`` for NaN or Infinity, ``too_deep``, ``bad_number``, ``not_utf8``),
        ``not_json`` for data JSON cannot write (a set, a cycle, an int too long to print),
        ``too_large`` over SQS's ceiling. Defaults (no room, no user, namespace ``/``) are left
        out.

        >>> Envelope("order", {"id": 7}, room="shop").to_body()
        '{"event":"order","data":{"id":7},"room":"shop"}'
        """
        fields: dict[str, Any] = {"event": self.event, "data": self.data}
        if self.room is not None:
            fields["room"] = self.room  # a tuple of rooms is written as a JSON list
        if self.user is not None:
            fields["user"] = self.user
        if self.namespace != "/":
            fields["namespace"] = self.namespace
        if self.key is not None:
            fields["key"] = self.key
        if self.version is not None:
            fields["version"] = self.version
        try:
            # ASCII only: SQS refuses some characters written as they are (U+FFFF), never
            # their escapes; and a lone surrogate's escape is what loads() below refuses.
            body = json.dumps(fields, separators=(",", ":"))
        except RecursionError:
            raise DecodeError("too_deep", "envelope data is nested too deeply to write") from None
        except (TypeError, ValueError) as exc:
            raise DecodeError("not_json", f"envelope data is not JSON: {exc}") from None
        # json.dumps writes NaN, Infinity and 101 levels of nesting: the decoder's own rules
        # refuse them here, with its codes, instead of the worker dead-lettering them later.
        loads(body, "envelope")
        if len(body) > SQS_MAX_BYTES:  # all ASCII, so characters are bytes
            raise DecodeError(
                "too_large", f"envelope is {len(body)} bytes, over SQS's {SQS_MAX_BYTES}"
            )
        return body


def parse_body(
    body: str,
    *,
    default_event: str,
    max_bytes: int = SQS_MAX_BYTES,
    max_rooms: int = MAX_ROOMS,
    attributes: Mapping[str, Any] | None = None,
) -> Envelope:
    """Turn an SQS message body into an :class:`Envelope`, or raise :class:`DecodeError`.

    `attributes` are the message's routing attributes (see :func:`sqs_attributes`). They
    route a body that is not an envelope. When the body is an envelope as well, they must
    agree with it: a disagreement is refused (``routing_conflict``) rather than guessed.
    A message for more than `max_rooms` rooms and users together is refused
    (``too_many_rooms``).
    """
    envelope = _parse(body, default_event=default_event, max_bytes=max_bytes, attributes=attributes)
    targets = len(envelope.rooms)
    if targets > max_rooms:
        users = len(envelope.users)
        named = (
            f"{targets} targets ({targets - users} rooms, {users} users)"
            if users
            else f"{targets} rooms"
        )
        raise DecodeError(
            "too_many_rooms",
            f"the message names {named}, over MAX_MESSAGE_ROOMS={max_rooms} (rooms and users "
            "count together)",
        )
    return envelope


def _parse(
    body: str, *, default_event: str, max_bytes: int, attributes: Mapping[str, Any] | None
) -> Envelope:
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise DecodeError(
            "not_utf8", f"body is not valid UTF-8 (unpaired surrogate at character {exc.start})"
        ) from None
    if size > max_bytes:
        raise DecodeError("too_large", f"body is {size} bytes, over the limit of {max_bytes}")
    routing = dict(attributes or {})
    value = loads(body, "body")
    if isinstance(value, dict) and value.get("Type") == "Notification" and "TopicArn" in value:
        message = value.get("Message")
        if not isinstance(message, str):
            raise DecodeError(
                "bad_sns", "SNS notification without a string 'Message' (raw delivery off?)"
            )
        # The SNS message's own attributes route it; the SQS message's, if any, win.
        routing = sns_attributes(value.get("MessageAttributes")) | routing
        value = loads(message, "SNS Message")
    if isinstance(value, dict) and "event" in value and value.keys() <= ENVELOPE_KEYS:
        envelope = Envelope(
            event=value["event"],
            data=value.get("data"),
            room=value.get("room"),
            namespace=value.get("namespace", "/"),
            user=value.get("user"),
            key=value.get("key"),
            version=value.get("version"),
        )
        for name in ROUTING_ATTRIBUTES:
            if name in routing and _normal(name, routing[name]) != getattr(envelope, name):
                raise DecodeError(
                    "routing_conflict",
                    f"message attribute {name}={routing[name]!r:.80} disagrees with the "
                    f"envelope's {name}={getattr(envelope, name)!r:.80}",
                )
        return envelope
    return Envelope(
        event=routing.get("event", default_event),
        data=value,
        room=routing.get("room"),
        namespace=routing.get("namespace", "/"),
        user=routing.get("user"),
    )


def sqs_attributes(message_attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The routing attributes of an SQS message's ``MessageAttributes``."""
    return _attributes(message_attributes, type_key="DataType", value_key="StringValue")


def sns_attributes(message_attributes: Any) -> dict[str, Any]:
    """The routing attributes of an SNS notification's ``MessageAttributes``."""
    return _attributes(message_attributes, type_key="Type", value_key="Value")


def _attributes(raw: Any, *, type_key: str, value_key: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DecodeError("bad_attributes", "message attributes must be an object")
    routing: dict[str, Any] = {}
    for name in ROUTING_ATTRIBUTES:
        if name not in raw:
            continue
        attribute = raw[name]
        kind = attribute.get(type_key, "") if isinstance(attribute, Mapping) else ""
        value = attribute.get(value_key) if isinstance(attribute, Mapping) else None
        if not isinstance(value, str) or not str(kind).startswith("String"):
            raise DecodeError(
                "bad_attributes",
                f"message attribute {name!r} must be a String, got {attribute!r:.80}",
            )
        if name in _LISTS and kind == "String.Array":
            try:
                value = loads(value, f"{name} attribute of type String.Array")
            except DecodeError as exc:
                if exc.code == "not_json":
                    raise DecodeError("bad_attributes", exc.reason) from None
                raise
        routing[name] = value
    return routing


def _normal(name: str, value: Any) -> Any:
    """An attribute's value as the envelope holds it: a list is a tuple, each name once."""
    if name in _LISTS and isinstance(value, list):
        return tuple(dict.fromkeys(item if isinstance(item, str) else repr(item) for item in value))
    return value


def _targets_of(
    name: str, value: object, check: Callable[[object], None]
) -> str | tuple[str, ...] | None:
    """A room or user field, checked: None, one name, or a tuple of names, each once."""
    if isinstance(value, list | tuple):
        if not value or len(value) > MAX_ROOMS:
            raise DecodeError(
                "bad_envelope",
                f"a {name} list must have 1 to {MAX_ROOMS} {name}s, got {len(value)}",
            )
        for item in value:
            check(item)
        # A name given twice is one target: one offset in its stream, one delivery.
        return tuple(dict.fromkeys(value))
    if value is None:
        return None
    check(value)
    return str(value)  # checked: a str


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


#: No state key is longer.
MAX_KEY_LENGTH = 200
#: Versions are what JSON numbers and Redis integers both hold exactly.
MAX_VERSION = 2**53 - 1


def _check_state(key: object, version: object) -> None:
    if key is not None and (
        not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or _CONTROL.search(key)
    ):
        raise DecodeError(
            "bad_envelope",
            f"envelope field 'key' must be a string of 1 to {MAX_KEY_LENGTH} characters without "
            f"control characters, got {key!r:.80}",
        )
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_VERSION
    ):
        raise DecodeError(
            "bad_envelope",
            f"envelope field 'version' must be an integer from 0 to {MAX_VERSION}, "
            f"got {version!r:.80}",
        )


def _check_user(user: object) -> None:
    if (reason := user_error(user)) is not None:
        raise DecodeError("bad_envelope", reason)


def _check_room(room: object) -> None:
    if not isinstance(room, str) or not room or room.startswith(RESERVED_PREFIX):
        raise DecodeError(
            "bad_envelope",
            f"a room must be a non-empty string not starting with {RESERVED_PREFIX!r}; "
            f"got {room!r:.80}",
        )


def loads(text: str | bytes, what: str = "JSON") -> Any:
    """Strict JSON: what every decoder downstream (the server, browsers) can hold.

    Refuses ``NaN``/``Infinity`` and numbers that overflow a double (``not_finite``: a browser's
    ``JSON.parse`` rejects the whole packet and socket.io-client drops the connection),
    integers over :data:`MAX_INT_DIGITS` digits (``bad_number``), nesting deeper than
    :data:`MAX_DEPTH` (``too_deep``) and lone surrogates (``not_utf8``).
    """
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_int
        )
    except json.JSONDecodeError as exc:
        raise DecodeError(
            "not_json", f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError("too_deep", f"{what} is JSON nested too deeply to decode") from None
    except DecodeError as exc:
        raise DecodeError(exc.code, f"{what} {exc.reason}") from None
    if _depth_over(value, MAX_DEPTH):
        raise DecodeError("too_deep", f"{what} is JSON nested more than {MAX_DEPTH} levels deep")
    # A \uD800-\uDFFF escape that is not half of a pair decodes to a string no UTF-8 encoder
    # (and no client) accepts; only look closer when the text has such an escape at all.
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise DecodeError(
            "not_utf8", f"{what} has a \\u escape of an unpaired surrogate (not valid UTF-8)"
        )
    return value


def _refuse_constant(name: str) -> Any:
    raise DecodeError("not_finite", f"has {name}, which is not JSON (browsers refuse it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise DecodeError("not_finite", f"has {text[:40]}, a number too large for a double")
    return value


def _int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise DecodeError(
            "bad_number",
            f"has an integer of more than {MAX_INT_DIGITS} digits, which no decoder holds",
        )
    return int(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth_over(value: Any, limit: int) -> bool:
    # Iterative, so that measuring depth cannot itself overflow the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _check_disconnect(envelope: Envelope) -> None:
    """A disconnect command names users, nothing else, and at most a short reason."""
    why = None
    if envelope.user is None:
        why = "needs 'user' (the users whose connections to close)"
    elif envelope.room is not None:
        why = "takes no 'room': it closes every connection of its users"
    elif envelope.namespace != "/":
        why = "takes no 'namespace': it covers every namespace"
    elif envelope.data is not None and not isinstance(envelope.data, dict):
        why = f"'data' must be null or an object, got {envelope.data!r:.80}"
    elif isinstance(envelope.data, dict) and envelope.data.keys() - {"reason"}:
        why = f"'data' may hold 'reason' only, got keys {sorted(envelope.data)!r:.80}"
    elif isinstance(envelope.data, dict) and "reason" in envelope.data:
        reason = envelope.data["reason"]
        if not isinstance(reason, str):
            why = f"'reason' must be a string, got {reason!r:.80}"
        elif len(reason) > MAX_REASON_LENGTH:
            why = f"'reason' is at most {MAX_REASON_LENGTH} characters, got {len(reason)}"
    if why is not None:
        raise DecodeError("bad_envelope", f"a {DISCONNECT_EVENT!r} command {why}")


def _check_event(event: object) -> None:
    if not isinstance(event, str) or not event:
        raise DecodeError(
            "bad_envelope", f"envelope field 'event' must be a non-empty string, got {event!r:.80}"
        )
    if event in RESERVED_EVENTS or event.startswith(RESERVED_PREFIX):
        raise DecodeError(
            "bad_envelope",
            f"envelope field 'event' is {event!r:.80}, a name reserved by Socket.IO or the relay "
            f"(the one relay command a producer may send is {DISCONNECT_EVENT!r}, with 'user')",
        )
