"""The server raises its open-files limit at start: every client is a file descriptor."""

from __future__ import annotations

import resource

import pytest

from server.__main__ import raise_file_limit


def test_the_soft_limit_is_raised_to_the_hard_one_and_never_lowered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"now": (1024, 20_000)}
    monkeypatch.setattr(resource, "getrlimit", lambda _which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _which, value: limits.update(now=value))
    assert raise_file_limit() == 20_000 and limits["now"] == (20_000, 20_000)
    limits["now"] = (50_000, 50_000)  # already there: nothing to do
    assert raise_file_limit() == 50_000 and limits["now"] == (50_000, 50_000)
    limits["now"] = (1024, resource.RLIM_INFINITY)  # unlimited is no number to set
    assert raise_file_limit() == 1024 and limits["now"] == (1024, resource.RLIM_INFINITY)
