"""`--pin`: the server's threads on its own core, everything the harness starts on the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from bench.stack import cpu_split, harness_pinned, pin


def allowed(pid: int, tid: int | None = None) -> str:
    status = Path(f"/proc/{pid}/task/{tid or pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if "Cpus_allowed_list" in line)


def test_the_server_core_and_the_rest_split_the_machine() -> None:
    server, others = cpu_split()
    cpus = set(range(os.cpu_count() or 1))
    assert server == {0} and server | others == cpus
    assert not server & others or cpus == {0}


def test_every_thread_of_a_process_is_pinned() -> None:
    # Given a process with a second thread already running
    code = (
        "import threading, sys; threading.Thread(target=sys.stdin.read).start(); sys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        while len(list(Path(f"/proc/{child.pid}/task").iterdir())) < 2:
            threading.Event().wait(0.01)  # a polling interval: the thread is starting
        # When it is pinned to core 0
        pin(child.pid, {0})
        # Then both of its threads are
        tids = [int(t.name) for t in Path(f"/proc/{child.pid}/task").iterdir()]
        assert [allowed(child.pid, tid) for tid in tids] == ["0"] * len(tids)
    finally:
        child.kill()
        child.communicate()


def test_processes_started_while_the_harness_is_pinned_run_on_the_rest() -> None:
    before = os.sched_getaffinity(0)
    with harness_pinned(True):
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    assert child.stdout.strip() == str(sorted(cpu_split()[1]))
    assert os.sched_getaffinity(0) == before
