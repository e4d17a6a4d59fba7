"""Every check that looks at more than one setting, in one place.

Each concern's module checks its own fields one by one; what two settings must agree on is
here. A check returns the setting it refuses and why, or None; :func:`cross_check` runs them
all once every field is valid and raises one `ValidationError` that names each refused setting,
as a single-field validator would, so that `load_settings` words it the same way:

    ACK_TIMEOUT_S='30': must be below SQS_VISIBILITY_TIMEOUT_S (30): ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

if TYPE_CHECKING:
    from shared.settings.model import Settings


class Refusal(NamedTuple):
    """The setting a check refuses (a field name) and why."""

    field: str
    reason: str


def _ack_within_visibility(settings: Settings) -> Refusal | None:
    visibility = settings.sqs_visibility_timeout_s
    if visibility is not None and settings.ack_timeout_s >= visibility:
        return Refusal(
            "ack_timeout_s",
            f"must be below SQS_VISIBILITY_TIMEOUT_S ({visibility}): a batch still waiting "
            "that long for its confirmation is visible on the queue again and received twice",
        )
    return None


def _queue_holds_a_resume(settings: Settings) -> Refusal | None:
    resume = settings.resume_max_bytes
    if settings.client_queue_max_bytes <= resume:
        return Refusal(
            "client_queue_max_bytes",
            f"must be above RESUME_MAX_BYTES ({resume}): a resume lands in the client's "
            "outgoing queue at once, and would disconnect every client that resumes",
        )
    return None


def _state_needs_replay(settings: Settings) -> Refusal | None:
    if settings.state_rooms and not (settings.replay_window_s > 0 and settings.replay_max_bytes):
        return Refusal(
            "state_rooms",
            "needs replay on (REPLAY_WINDOW_S and REPLAY_MAX_BYTES above 0): a client that "
            "joins a state room gets the events since the state it was sent from the replay "
            "history, without which it could miss some",
        )
    return None


def _message_holds_an_event(settings: Settings) -> Refusal | None:
    if settings.client_message_max_bytes <= settings.client_event_max_bytes:
        return Refusal(
            "client_message_max_bytes",
            f"must be above CLIENT_EVENT_MAX_BYTES ({settings.client_event_max_bytes}): a "
            "client event that size, in its packet, would close the connection",
        )
    return None


#: Every cross-setting check, in the order their refusals are reported.
CHECKS: tuple[Callable[[Settings], Refusal | None], ...] = (
    _ack_within_visibility,
    _queue_holds_a_resume,
    _state_needs_replay,
    _message_holds_an_event,
)


def cross_check(settings: Settings, given: Mapping[str, object]) -> None:
    """Raise a `ValidationError` for every setting a check refuses.

    `given` maps field names to the values as read (environment text), shown in the error as
    pydantic shows a field's input; a setting left at its default shows its value.
    """
    refusals = [refusal for check in CHECKS if (refusal := check(settings)) is not None]
    if not refusals:
        return
    raise ValidationError.from_exception_data(
        type(settings).__name__,
        [
            InitErrorDetails(
                type="value_error",
                loc=(field,),
                input=given.get(field, getattr(settings, field)),
                ctx={"error": ValueError(reason)},
            )
            for field, reason in refusals
        ],
    )
