"""The manual's settings tables, rendered from the settings themselves, as `.env.example` is
(`example.py`): one section per concern, each variable with its default and its field's text.
The manual's build (`docs/hooks.py`) writes them into `docs/settings.md`, so the page cannot
drift from the code.

>>> text = render_markdown()
>>> "| `SQS_WAIT_S` | `20` | ReceiveMessage long-poll wait, 0-20 seconds. |" in text
True
>>> escape("prefix* patterns, or *: `relay:*`, above RESUME_MAX_BYTES")
'prefix\\\\* patterns, or \\\\*: `relay:*`, above `RESUME_MAX_BYTES`'
"""

from __future__ import annotations

import re

from pydantic.fields import FieldInfo

from shared.settings.example import comment_of, value_text
from shared.settings.model import CONCERNS

#: Characters Markdown would read as markup (emphasis, links, table cells); `<` (HTML) has no
#: backslash escape in Python-Markdown, so it becomes `&lt;`.
_MARKUP = re.compile(r"([\\*_>\[\]|])")
#: Code spans stay as written: Markdown shows their text as it is.
_CODE_SPAN = re.compile(r"(`[^`]*`)")
#: A variable's name (`ACK_TIMEOUT_S`, `AWS_PROFILE`), shown as code.
_VARIABLE = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b")


def render_markdown(heading_level: int = 2) -> str:
    """Every concern as a heading, its note, and a table: variable, default, what it does."""
    hashes = "#" * heading_level
    parts = []
    for concern in CONCERNS:
        lines = [f"{hashes} {escape(concern.SECTION)}", ""]
        note = getattr(concern, "SECTION_NOTE", None)
        if note:
            lines += [escape(note), ""]
        lines += ["| variable | default | what it does |", "|---|---|---|"]
        fields = list(concern.model_fields.items())
        for index, (name, field) in enumerate(fields):
            heads_a_group = index + 1 < len(fields) and _covered_above(fields[index + 1][1])
            lines.append(
                f"| `{name.upper()}` | {_default(field)} | {_meaning(field, heads_a_group)} |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def escape(text: str) -> str:
    """`text` with its Markdown markup escaped and variable names as code, outside code spans."""
    out = []
    for piece in _CODE_SPAN.split(text):
        if piece.startswith("`"):
            out.append(piece)
            continue
        for index, part in enumerate(_VARIABLE.split(piece)):
            # split() puts each captured variable name at an odd index
            out.append(
                f"`{part}`" if index % 2 else _MARKUP.sub(r"\\\1", part).replace("<", "&lt;")
            )
    return "".join(out)


def _covered_above(field: FieldInfo) -> bool:
    return comment_of(field) is None


def _meaning(field: FieldInfo, heads_a_group: bool) -> str:
    # Each variable has a row of its own here, so each shows its own description. Where
    # .env.example prints a longer comment, the row says it too: instead of the description
    # where the comment repeats it or is about this variable alone, after it where the comment
    # covers the next variables too.
    description = field.description or ""
    comment = comment_of(field)
    if comment is None:
        paragraphs = [description]
    elif heads_a_group and not comment.startswith(description):
        paragraphs = [description, *comment.split("\n")]
    else:
        paragraphs = comment.split("\n")
    return "<br>".join(escape(paragraph) for paragraph in paragraphs)


def _default(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    text = value_text(default)
    return f"`{text}`" if text else "empty"


if __name__ == "__main__":  # pragma: no cover - a look at the tables without building
    print(render_markdown(), end="")
