"""State rooms (the latest event per key, sent to whoever joins) and the backend's read API."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator

from shared.settings.fields import SEE_ABOVE, CommaList, EmptyIsUnset, comment


class StateSettings(BaseModel):
    """What a room keeps of its state, and who may read streams over HTTP (docs/state.md)."""

    SECTION: ClassVar[str] = "State rooms and the backend read API (docs/state.md)"

    state_rooms: CommaList = Field(
        default_factory=list,
        description="Rooms that keep their latest event per key: names or prefix patterns.",
        json_schema_extra=comment(
            "State rooms, as names or prefix patterns (`orders:*`): each keeps its latest "
            "event per envelope `key` (one, without keys), at most STATE_MAX_KEYS of them and "
            "STATE_MAX_BYTES in all (the oldest go first), and a client that joins one gets "
            "them at once, then live events with no gap. None by default."
        ),
    )
    state_max_keys: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Keys a state room keeps.",
        json_schema_extra=SEE_ABOVE,
    )
    state_max_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Bytes a state room keeps.",
        json_schema_extra=SEE_ABOVE,
    )
    backend_api_key: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        None,
        description="The backend read API's key (32+ characters); unset: the API is off.",
        json_schema_extra=comment(
            "The backend read API (GET /api/streams): a backend sends `Authorization: Bearer "
            "<this key>` (32+ characters, not a client token) to read a stream's position, "
            "state and last events while it renders a page. Unset: the API answers 404. At "
            "most BACKEND_API_RATE requests a second in all, and BACKEND_API_MAX_EVENTS events "
            "(and RESUME_MAX_BYTES) per answer."
        ),
    )
    backend_api_rate: float = Field(
        50.0,
        gt=0,
        le=100_000,
        description="Read API requests per second, in all.",
        json_schema_extra=SEE_ABOVE,
    )
    backend_api_max_events: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Events one read API answer holds, at most.",
        json_schema_extra=SEE_ABOVE,
    )

    @field_validator("backend_api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (a random key, not a password)")
        return value
