"""mkdocs hooks (mkdocs.yml, `hooks:`): the settings page's tables, written at every build
from the settings themselves (`shared/settings/markdown.py`), so that they cannot drift.

`docs/settings.md` holds the prose and two markers; what lies between them in the file (a
pointer to `.env.example`, for readers of the repository) is replaced by the tables.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_PAGE = "settings.md"
BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"


def with_settings_tables(markdown: str) -> str:
    """`markdown` with the text between the markers replaced by every setting's table."""
    if str(ROOT) not in sys.path:  # mkdocs runs from its own script, not the repository
        sys.path.insert(0, str(ROOT))
    from shared.settings.markdown import render_markdown

    before, begin, rest = markdown.partition(BEGIN)
    _old, end, after = rest.partition(END)
    if not begin or not end:
        raise PluginError(f"{SETTINGS_PAGE} lost its markers {BEGIN} ... {END}")
    return f"{before}{begin}\n{render_markdown(heading_level=3)}\n{end}{after}"


def on_page_markdown(markdown: str, *, page: Any, **_kwargs: Any) -> str:
    if page.file.src_uri == SETTINGS_PAGE:
        return with_settings_tables(markdown)
    return markdown
