"""Presence: who is in a room, join and leave events, and online/offline events to the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, Field

from shared.settings.fields import SEE_ABOVE, CommaList, EmptyIsUnset, comment


class PresenceSettings(BaseModel):
    """Presence in rooms and users' online state (docs/presence.md)."""

    SECTION: ClassVar[str] = "Presence and online/offline events (docs/presence.md)"

    presence_rooms: CommaList = Field(
        default_factory=list,
        description="Rooms with presence: names or prefix patterns (orders:*); none by default.",
        json_schema_extra=comment(
            "Rooms with presence, as names or prefix patterns (`chat:*`, `*` for all): a client "
            "allowed in one may ask who is there (the presence request), and its members are "
            "sent who joins and leaves (relay:presence). It costs a little per join and leave: "
            "none by default."
        ),
    )
    presence_grace_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="A member gone for less than this, seconds, did not leave (a quick reconnect).",
        json_schema_extra=comment(
            "A member (or a user, for online/offline) whose last connection has been gone for "
            "less than this many seconds has not left: a quick reconnect is neither a leave nor "
            "a join."
        ),
    )
    presence_lease_s: float = Field(
        15.0,
        ge=2,
        le=3600,
        description="Cluster mode: a server that has not renewed its lease this long is dead, "
        "and its members leave.",
        json_schema_extra=comment(
            "Cluster mode: each server renews a lease in Redis every third of this many "
            "seconds; once one has lapsed (the server was killed or cut off), the other "
            "servers take its members out, and they leave after the grace above."
        ),
    )
    presence_info_claim: str = Field(
        "info",
        min_length=1,
        max_length=64,
        description="Token claim with a member's public info (a JSON object, 1 KiB at most).",
        json_schema_extra=comment(
            "The token claim whose JSON object (1 KiB at most) other members see beside the "
            "user id: a display name, an avatar URL. Never put secrets in it."
        ),
    )
    presence_max_members: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Rooms with more members answer with their count alone.",
        json_schema_extra=comment(
            "A room with more members than this answers a presence request with its count "
            "alone; a smaller one lists them, PRESENCE_PAGE_SIZE at a time."
        ),
    )
    presence_page_size: int = Field(
        100, ge=1, le=10_000, description="Members per page.", json_schema_extra=SEE_ABOVE
    )
    presence_coalesce_s: float = Field(
        0.5,
        ge=0.01,
        le=60,
        description="Joins and leaves of a room are sent to its members at most this often, "
        "seconds.",
        json_schema_extra=comment(
            "Joins and leaves of one room are gathered for this many seconds and sent to its "
            "members as one relay:presence event: a burst of reconnects is one event per room, "
            "not a storm."
        ),
    )
    presence_events_queue_url: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="SQS queue for user_online/user_offline and room_join/room_leave events; "
        "unset: none sent.",
        json_schema_extra=comment(
            "Online/offline events to the backend: an SQS queue (standard, or FIFO: a name "
            "ending .fifo, MessageGroupId the user) that gets user_online, user_offline, "
            "room_join and room_leave, each with the user's sequence number. Unset: none. "
            "While SQS refuses or is unreachable they wait, at most PRESENCE_OUTBOX_MAX of "
            "them (past that, counted and logged, and the backend sees a gap in the sequence)."
        ),
    )
    presence_outbox_max: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Events waiting for SQS, at most.",
        json_schema_extra=SEE_ABOVE,
    )
    presence_state_file: Annotated[Path | None, EmptyIsUnset] = Field(
        None,
        description="One server, no Redis: a file that keeps who is online across a crash "
        "(unset: memory).",
        json_schema_extra=comment(
            "One server without Redis: the SQLite file that keeps who is online and the events "
            "not sent yet, so that a server killed and restarted still sends each user's "
            "user_offline. Unset: memory only (a kill loses them). Cluster mode keeps both in "
            "Redis."
        ),
    )

    @property
    def presence_events(self) -> bool:
        """Online/offline events go to the backend (PRESENCE_EVENTS_QUEUE_URL)."""
        return self.presence_events_queue_url is not None
