"""Local processes for tests and benchmarks: each started in its own process group with its
output in a log file, waited on through a real readiness signal, and stopped together against
one deadline, the way honcho stops a Procfile.

Usage::

    supervisor = Supervisor(log_dir)
    server = supervisor.spawn("server", [PYTHON, "-m", "server"], env)
    server.wait_ready(lambda: urllib.request.urlopen(url), what="the server's /healthz")
    ...
    supervisor.stop_all()  # SIGTERM to all at once; SIGKILL to the groups still there after it
    print(supervisor.report())  # every process's log, for a failure report

Why not honcho's own `Manager`/`Process`, though honcho is a dependency: `Manager.loop()`
starts a fixed set of processes at once and blocks until all have exited, stops everything
when any one exits, installs SIGINT/SIGTERM handlers in the calling process and relays output
line by line through a multiprocessing queue to a printer; its `Popen` runs commands through
a shell. Here processes start one at a time, each after the previous one is ready; a test
kills or stops one on purpose and goes on with the rest; output goes straight to a file that
a test reads while the process runs; and signals must reach the program, not a shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The repository root; children run in their log directory, so they need it as PYTHONPATH.
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: How much of a log an error message quotes; the whole log is in the log file.
LOG_TAIL_CHARS = 2000


class ProcessExited(RuntimeError):
    """A supervised process is gone while something still needs it (it was being waited on)."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what`
    after the timeout. An exception from `check` means "not yet", except `ProcessExited`:
    a process that is gone will not become ready, so that one fails the wait at once."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ProcessExited:
            raise
        except Exception as exc:  # the thing we wait for is not up yet
            last_error = exc
        time.sleep(interval_s)  # polling interval of a real readiness signal, not a sync sleep
    raise TimeoutError(
        f"timed out after {timeout_s} s waiting for {what} (last error: {last_error})"
    )


class Process:
    """One child process in its own process group, with stdout and stderr in `log_path`."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        # The child gets its own copy of the descriptor; ours is closed once it has started.
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                # Not the repo root: a developer's .env there must not leak into a child.
                cwd=log_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a stop reaches its children
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        """Raise `ProcessExited`, quoting the end of the log, if the process has exited."""
        if not self.alive():
            raise ProcessExited(
                f"{self.name} exited with {self.popen.returncode}; its log ends:\n"
                f"{self.log()[-LOG_TAIL_CHARS:]}"
            )

    def wait_ready(self, ready: Callable[[], Any], *, what: str, timeout_s: float = 30) -> None:
        """Poll `ready` until it is truthy; fail at once if the process exits first."""

        def ready_while_alive() -> Any:
            self.check_alive()
            return ready()

        wait_until(ready_while_alive, timeout_s=timeout_s, what=what)

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)
        # else: already gone; stop() still reaps it

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None if the process is still running after `timeout_s`."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self) -> None:
        """SIGKILL the whole process group (the process and whatever it started), then reap."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(5)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> tuple[int | None, float]:
        """Signal, wait, SIGKILL the group if needed. Returns (exit code, seconds it took);
        the code is None when the process had to be killed."""
        started = time.monotonic()
        self.send_signal(sig)
        code = self.wait(timeout_s)
        elapsed = time.monotonic() - started
        if code is None:
            self.kill_group()
        return code, elapsed


class Supervisor:
    """The processes of one test or one benchmark case, stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        """Start `argv` now (log file `<log_dir>/<name>.log`); readiness is the caller's."""
        process = Process(name, argv, env, self.log_dir)
        self.started.append(process)
        return process

    def stop_all(self, timeout_s: float = 10) -> None:
        """SIGTERM to every process at once (as honcho does), then wait for them against one
        deadline, the last started first; SIGKILL the group of any still running after it."""
        for process in self.started:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in reversed(self.started):
            if process.wait(max(0.0, deadline - time.monotonic())) is None:
                process.kill_group()

    def report(self) -> str:
        """Every process's log under a header naming it, for a failure report."""
        return "\n".join(f"----- {p.name} (pid {p.pid}) -----\n{p.log()}" for p in self.started)
