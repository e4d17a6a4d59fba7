"""The Socket.IO Admin UI: python-socketio's `instrument()`, off by default (docs/operations.md)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from shared.settings.fields import SEE_ABOVE, EmptyIsUnset, comment

#: The shortest ADMIN_PASSWORD taken: the admin namespace sees every client and room.
ADMIN_PASSWORD_MIN = 16


class AdminSettings(BaseModel):
    """The Admin UI: its switch, its own credentials, its namespace and its reporting mode."""

    SECTION: ClassVar[str] = "The Socket.IO Admin UI (docs/operations.md)"

    admin_ui: bool = Field(
        False,
        description="Serve the Socket.IO Admin UI at /admin-ui/ and instrument the server.",
        json_schema_extra=comment(
            "The Socket.IO Admin UI: python-socketio's instrument() on ADMIN_NAMESPACE, and "
            "the UI's own files (the npm package @socket.io/admin-ui, fetched once by "
            "`python -m server.web.admin_assets`) at /admin-ui/. Off by default; when on, "
            "ADMIN_USERNAME and ADMIN_PASSWORD are required (always: the UI lists every "
            "client, its rooms and its headers). Read-only. Keep it behind your own network."
        ),
    )
    admin_username: Annotated[str | None, EmptyIsUnset] = Field(
        None,
        validate_default=True,
        description="The Admin UI's user name; required with ADMIN_UI on.",
        json_schema_extra=SEE_ABOVE,
    )
    admin_password: Annotated[SecretStr | None, EmptyIsUnset] = Field(
        None,
        validate_default=True,
        description=f"The Admin UI's password ({ADMIN_PASSWORD_MIN}+ characters); required "
        "with ADMIN_UI on.",
        json_schema_extra=SEE_ABOVE,
    )
    admin_namespace: str = Field(
        "/admin",
        description="The Socket.IO namespace of the Admin UI; no client token opens it.",
        json_schema_extra=SEE_ABOVE,
    )
    admin_mode: Literal["development", "production"] = Field(
        "production",
        description="production: server figures only (clients, namespaces, packets); "
        "development: every socket, its rooms and events too (costs per emit and recipient).",
        json_schema_extra=comment(
            "production: the UI shows the server's figures only (clients, polling clients, "
            "sockets per namespace, polling packets and bytes). development: also every "
            "socket with its rooms and transport, and every event sent and received, at a "
            "cost per emit and per recipient: for debugging, not for a loaded relay."
        ),
    )

    @field_validator("admin_namespace")
    @classmethod
    def _own_namespace(cls, value: str) -> str:
        if not value.startswith("/") or value == "/" or any(ch.isspace() for ch in value):
            raise ValueError(
                "must be a namespace of its own, like /admin: '/' followed by a name, not the "
                "clients' '/'"
            )
        return value

    @field_validator("admin_username")
    @classmethod
    def _username_when_on(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("admin_ui") and not (value or "").strip():
            raise ValueError(
                "required with ADMIN_UI on: the Admin UI logs in with ADMIN_USERNAME and "
                "ADMIN_PASSWORD, never with a client token"
            )
        return value

    @field_validator("admin_password")
    @classmethod
    def _password_when_on(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < ADMIN_PASSWORD_MIN:
            raise ValueError(f"must be at least {ADMIN_PASSWORD_MIN} characters")
        if info.data.get("admin_ui") and value is None:
            raise ValueError(
                f"required with ADMIN_UI on ({ADMIN_PASSWORD_MIN}+ characters): the Admin UI "
                "sees every client and room"
            )
        return value
