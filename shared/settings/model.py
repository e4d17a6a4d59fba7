"""`Settings`: every concern's settings in one flat, frozen object, and `load_settings`."""

from __future__ import annotations

from typing import Any, Self

from pydantic import ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings.admin import AdminSettings
from shared.settings.auth import AuthSettings
from shared.settings.checks import cross_check
from shared.settings.clients import ClientSettings
from shared.settings.cluster import ClusterSettings
from shared.settings.handoff import HandoffSettings
from shared.settings.presence import PresenceSettings
from shared.settings.process import ProcessSettings
from shared.settings.sqs import EMBEDDED_QUEUE_URL, SqsSettings
from shared.settings.state import StateSettings
from shared.settings.tracing import TracingSettings

#: The concerns in the order `.env.example` lists them.
CONCERNS: tuple[type[Any], ...] = (
    SqsSettings,
    HandoffSettings,
    ClusterSettings,
    ClientSettings,
    StateSettings,
    PresenceSettings,
    AuthSettings,
    AdminSettings,
    TracingSettings,
    ProcessSettings,
)


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable and says why."""


# pydantic collects fields from the last base up, so the concerns are listed in reverse: the
# fields (and several errors in one message) then come in CONCERNS' order.
class Settings(
    ProcessSettings,
    TracingSettings,
    AdminSettings,
    AuthSettings,
    PresenceSettings,
    StateSettings,
    ClientSettings,
    ClusterSettings,
    HandoffSettings,
    SqsSettings,
    BaseSettings,
):
    """Every setting of the relay. Field names are the environment variables, upper-cased.

    Each concern's fields, their own checks and derived values live in their module
    (`sqs.py`, `handoff.py`, `cluster.py`, `clients.py`, `state.py`, `presence.py`,
    `auth.py`, `admin.py`, `tracing.py`, `process.py`); the
    checks between settings in `checks.py`. All are read flat: `settings.sqs_wait_s`.

    >>> settings = load_settings({"SQS_WAIT_S": "1"})
    >>> settings.sqs_wait_s
    1
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checks(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        settings = handler(data)
        cross_check(settings, data if isinstance(data, dict) else {})
        return settings

    @property
    def demo_on(self) -> bool:
        """The demo endpoints are served when asked for (`DEMO`), or by default with the
        embedded emulator's own queue; never merely because the queue is on loopback (a
        LocalStack sidecar or a tunnel may hold real data)."""
        return self.sqs_queue_url == EMBEDDED_QUEUE_URL if self.demo is None else self.demo


class _OnlyGiven(Settings):
    """Settings built from explicit values alone: no process environment, no `.env`."""

    @classmethod
    def settings_customise_sources(  # type: ignore[no-untyped-def, override]
        cls, settings_cls, init_settings, **_sources
    ):
        return (init_settings,)


def load_settings(
    environ: dict[str, str] | None = None, *, env_file: str | None = ".env"
) -> Settings:
    """Read and validate the settings; raise :class:`SettingsError` naming the bad variable.

    With `environ` given, only that mapping is read (tests); otherwise the process
    environment and `env_file` are.
    """
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]
        lowered = {key.lower(): value for key, value in environ.items()}
        known = {name: lowered[name] for name in Settings.model_fields if name in lowered}
        return _OnlyGiven(**known)  # type: ignore[arg-type]  # strings, validated by pydantic
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        if "secret" in field or "password" in field:
            shown = ""  # never echo a secret into a log
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{field.upper()}{shown}: {message}")
    return "invalid setting" + ("s" if len(lines) > 1 else "") + ": " + "; ".join(lines)
