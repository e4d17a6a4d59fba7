"""uvicorn's and websockets' log lines per WebSocket connection are DEBUG lines
(server/adapters/wsprotocol.py's quiet_connection_lines)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.adapters.wsprotocol import quiet_connection_lines


@pytest.fixture
def uvicorn_error(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    logger = logging.getLogger("uvicorn.error")
    filters, level = list(logger.filters), logger.level
    quiet_connection_lines()
    quiet_connection_lines()  # twice: one filter
    yield logger
    logger.filters[:] = filters
    logger.setLevel(level)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "uvicorn.error"]


def test_at_info_a_connections_lines_are_left_out_and_the_rest_stay(
    uvicorn_error: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    # Given LOG_LEVEL=INFO, when a connection is accepted, opened and closed, and another
    # refused
    uvicorn_error.setLevel(logging.INFO)
    with caplog.at_level(logging.DEBUG):
        uvicorn_error.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/socket.io/")
        uvicorn_error.info("connection open")
        uvicorn_error.info("connection closed")
        uvicorn_error.info('%s - "WebSocket %s" 403', "127.0.0.1:6", "/socket.io/")
        uvicorn_error.info("Application startup complete.")

    # Then only the refusal and uvicorn's own line are logged
    assert lines(caplog) == [
        ("INFO", '127.0.0.1:6 - "WebSocket /socket.io/" 403'),
        ("INFO", "Application startup complete."),
    ]
    assert sum(type(f).__name__ == "_ConnectionLinesAtDebug" for f in uvicorn_error.filters) == 1


def test_at_debug_they_are_logged_as_debug_lines(
    uvicorn_error: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    # Given LOG_LEVEL=DEBUG, when a connection opens, then its line is there, as DEBUG
    uvicorn_error.setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        uvicorn_error.info("connection open")
    assert lines(caplog) == [("DEBUG", "connection open")]
