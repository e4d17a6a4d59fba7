from __future__ import annotations

from collections.abc import Iterator

import engineio
import pytest
import socketio

from tests.processes import Processes, Stack

_PROCESSES = pytest.StashKey[Processes]()
#: The outcome of each phase of a test, for fixtures that act on failure (screenshots).
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture(autouse=True)
def _packet_json_restored() -> Iterator[None]:
    """`AsyncServer(json=...)` sets the JSON module of python-socketio's and python-engineio's
    Packet classes for the whole process (the relay's refuses NaN); put them back after every
    test, so that a later test's client in this process (a NaN sent by python-socketio's
    client, say) encodes as it does alone."""
    saved = socketio.packet.Packet.json, engineio.packet.Packet.json
    yield
    socketio.packet.Packet.json, engineio.packet.Packet.json = saved


@pytest.fixture
def stack() -> Stack:
    """Fresh ports and a fresh queue name for one test."""
    return Stack()


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Processes]:
    """Starts real subprocesses; stops them all in teardown; their logs join a failure report."""
    group = Processes(tmp_path_factory.mktemp("logs"))
    request.node.stash[_PROCESSES] = group
    yield group
    group.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    group = item.stash.get(_PROCESSES, None)
    if group is not None and report.failed and group.started:
        report.sections.append(("process logs", group.report()))
    return report
