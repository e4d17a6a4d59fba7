"""`.env.example`, rendered from the settings themselves: one section per concern, each
variable with its default and, above it, its field's description or longer comment
(`fields.py` says how a field chooses). `python -m shared.settings > .env.example` writes it;
a test fails when the committed file differs. The manual's settings page (`markdown.py`) is
rendered from the same fields.

>>> lines = render().splitlines()
>>> lines[lines.index("SQS_WAIT_S=20") - 1]
'# ReceiveMessage long-poll wait, 0-20 seconds.'
"""

from __future__ import annotations

import textwrap
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shared.settings.fields import COMMENT_KEY
from shared.settings.model import CONCERNS

WIDTH = 95

INTRO = (
    "Every setting of the relay with its default. Copy to .env (honcho and every process read it) "
    "or export the variables; the environment wins over .env. A wrong value stops the process at "
    "start with a message that names the variable. Written by `python -m shared.settings`, from "
    "the settings' own descriptions in shared/settings/: change them there."
)


def render() -> str:
    """The text of `.env.example`."""
    parts = [_comment(INTRO)]
    for concern in CONCERNS:
        lines = [f"# --- {concern.SECTION} ".ljust(WIDTH, "-")]
        note = getattr(concern, "SECTION_NOTE", None)
        if note:
            lines.append(_comment(note))
        for name, field in concern.model_fields.items():
            text = comment_of(field)
            if text:
                lines.append(_comment(text))
            lines.append(_assignment(name.upper(), field))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def comment_of(field: FieldInfo) -> str | None:
    """What `.env.example` prints above the variable: its longer comment, its description,
    or None where the comment above covers it."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and COMMENT_KEY in extra:
        text = extra[COMMENT_KEY]
        return text if isinstance(text, str) else None
    return field.description


def _comment(text: str) -> str:
    return "\n".join(
        "\n".join(
            textwrap.wrap(
                paragraph,
                width=WIDTH,
                initial_indent="# ",
                subsequent_indent="# ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
        for paragraph in text.split("\n")
    )


def _assignment(variable: str, field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return f"# {variable}="  # unset: shown, commented out
    return f"{variable}={value_text(default)}"


def value_text(value: Any) -> str:
    """A default as a variable's text: a list comma-separated, a whole float without ".0"."""
    if value is PydanticUndefined:  # pragma: no cover - every setting has a default
        raise ValueError("a setting without a default cannot be written to .env.example")
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
