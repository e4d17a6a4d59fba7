"""`.env.example` is written from the settings themselves (`python -m shared.settings`)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.settings.__main__ import main
from shared.settings.example import render
from shared.settings.model import CONCERNS

ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=\S*$")


def _assigned(text: str) -> list[str]:
    """The variables a rendering assigns, commented out (`# NAME=`) or not, in order."""
    return [match[1] for line in text.splitlines() if (match := ASSIGNMENT.match(line))]


def test_the_committed_env_example_is_what_the_settings_render() -> None:
    committed = ENV_EXAMPLE.read_text()
    rendered = render()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            ".env.example",
            "python -m shared.settings",
        )
    )
    assert not diff, f"run `uv run python -m shared.settings > .env.example`:\n{diff}"


def test_every_setting_is_listed_in_env_example_once_in_its_concerns_order() -> None:
    # Given the concerns in their .env.example order
    in_concerns = [name.upper() for concern in CONCERNS for name in concern.model_fields]

    # Then they hold every field of Settings, each once, and the file lists them in that order
    assert sorted(in_concerns) == sorted(name.upper() for name in Settings.model_fields)
    assert _assigned(render()) == in_concerns


def test_a_variable_shows_its_default_and_an_unset_one_is_commented_out() -> None:
    lines = render().splitlines()
    assert "SQS_WAIT_S=20" in lines
    assert "ACK_TIMEOUT_S=5" in lines  # a whole float without its ".0"
    assert "CLIENT_EVENTS=item_removed" in lines  # a list, comma-separated
    assert "# JWT_SECRET=" in lines  # None: unset


def test_a_description_is_the_comment_unless_a_longer_one_or_the_one_above_covers_it() -> None:
    lines = render().splitlines()
    wait = Settings.model_fields["sqs_wait_s"].description
    assert lines[lines.index("SQS_WAIT_S=20") - 1] == f"# {wait}"
    # ZMQ_RESOLVE_S is explained by ZMQ_CONNECT's longer comment, right above both
    before_resolve = lines[lines.index("ZMQ_RESOLVE_S=5") - 1]
    assert before_resolve == "ZMQ_CONNECT="
    assert "ZMQ_RESOLVE_S" in lines[lines.index("ZMQ_CONNECT=") - 1]


def test_python_m_shared_settings_prints_the_env_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main()
    assert capsys.readouterr().out == render()
