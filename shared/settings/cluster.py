"""Cluster mode: several servers sharing Redis Streams as their bus and replay history."""

from __future__ import annotations

from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from shared.settings.fields import EmptyIsUnset, comment


class ClusterSettings(BaseModel):
    """Redis, for servers and workers alike (docs/cluster.md)."""

    SECTION: ClassVar[str] = "Cluster mode (docs/cluster.md)"

    redis_url: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        description="Redis Streams as the servers' shared bus and history; unset: one server, "
        "history in memory.",
        json_schema_extra=comment(
            "Redis (redis://, rediss:// or unix://) as the servers' shared bus and replay "
            "history; set it for servers and workers alike. Unset: one server, history in memory, "
            "no Redis."
        ),
    )
    redis_prefix: str = Field(
        "relay",
        min_length=1,
        max_length=64,
        description="Prefix of every key the relay keeps in Redis (several relays can share one "
        "Redis).",
    )
    redis_feed_max_events: int = Field(
        10_000,
        ge=100,
        le=100_000_000,
        description="Messages the shared feed (and history) keeps in all, for every server.",
        json_schema_extra=comment(
            "Messages the shared feed keeps in all: how far a server cut off from Redis can "
            "catch up (past it, its clients are sent away to resume from the history) and, with "
            "replay on, a bound on the shared history beside REPLAY_WINDOW_S, REPLAY_MAX_EVENTS "
            "and REPLAY_MAX_BYTES, which bound Redis's copy as they bound one server's."
        ),
    )
    redis_stream_ttl_s: float = Field(
        86_400.0,
        ge=1,
        le=366 * 86_400,
        description="How long Redis keeps an idle stream's position, seconds (at least "
        "REPLAY_WINDOW_S).",
        json_schema_extra=comment(
            "How long Redis keeps an idle stream's position (its last offset), seconds, at least "
            "REPLAY_WINDOW_S. A client that resumes a stream idle longer is told to resync."
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {value!r:.80}")
        return value

    @property
    def cluster(self) -> bool:
        """Cluster mode: several servers share Redis (REDIS_URL); a worker hands each batch to
        one of them. Otherwise every server a worker feeds gets every batch."""
        return self.redis_url is not None
