"""The manual (docs/, mkdocs): its settings page is written from the settings themselves at
every build, and every test it names as proof exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import markdown
import pytest
from mkdocs.exceptions import PluginError

from shared.settings.markdown import escape
from shared.settings.model import CONCERNS

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|", re.MULTILINE)
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_page_gets_every_setting_once_in_its_concerns_order_at_build() -> None:
    # Given the committed page, which holds the prose and only a pointer between its markers
    committed = (DOCS / "settings.md").read_text()
    assert ROW.findall(committed) == []

    # When the build's hook writes the tables into it
    built = _hooks().with_settings_tables(committed)

    # Then every setting has one row, in the concerns' order, and the prose around is kept
    in_concerns = [name.upper() for concern in CONCERNS for name in concern.model_fields]
    assert [name for name, _default in ROW.findall(built)] == in_concerns
    assert built.startswith(committed.partition("<!-- settings:begin -->")[0])
    assert "| `SQS_WAIT_S` | `20` | ReceiveMessage long-poll wait, 0-20 seconds. |" in built
    assert "| `JWT_SECRET` | unset |" in built
    assert "| `ZMQ_CONNECT` | empty |" in built


def test_a_settings_page_without_its_markers_fails_the_build() -> None:
    with pytest.raises(PluginError, match="markers"):
        _hooks().with_settings_tables("# Settings\n\nno markers here\n")


def test_a_description_shows_as_its_text_in_a_table_cell_not_as_markup() -> None:
    # Given a description with what Markdown would read as emphasis, a tag, a link, a cell
    # boundary, plus a variable name and a code span
    text = "rooms *a* or _b_, <b>x</b>, [l](u) | c, above RESUME_MAX_BYTES, `relay:*`"

    # When it is rendered in a table cell, as the settings page renders it
    html = markdown.markdown(f"| text |\n|---|\n| {escape(text)} |", extensions=["tables"])

    # Then the cell shows the text as written, the variable and the code span as code
    cell = html.split("<td>")[1].split("</td>")[0]
    assert cell == (
        "rooms *a* or _b_, &lt;b&gt;x&lt;/b&gt;, [l](u) | c, above "
        "<code>RESUME_MAX_BYTES</code>, <code>relay:*</code>"
    )


def test_every_test_the_manual_names_as_proof_exists() -> None:
    references = {
        match.groups()
        for page in DOCS.rglob("*.md")
        for match in TEST_REFERENCE.finditer(page.read_text())
    }
    assert len(references) > 50  # the guarantees and security pages name theirs

    missing = sorted(
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    )
    assert not missing, f"the manual names tests that do not exist: {missing}"
