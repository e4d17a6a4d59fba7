"""deploy/systemd/: the units for a plain VM. systemd's own checker accepts them (pointed at
this environment's commands), and the commands they run, with the signal and stop timeout
they stop them with, relay an event and stop in time."""

from __future__ import annotations

import configparser
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import relays_one_event, report
from tests.processes import ROOT, Processes, Stack, healthz

UNITS = ROOT / "deploy" / "systemd"
INSTALLED_BIN = "/opt/sqs-push-relay/bin"
ENVIRONMENT_FILE = "/etc/sqs-relay/relay.env"


def service(unit: Path) -> dict[str, str]:
    """The [Service] section of a unit (the keys these units set once each)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(unit)
    return dict(parser["Service"])


def here(unit: Path, env_file: Path) -> str:
    """`unit` with its command from this environment and its settings file from `env_file`."""
    return (
        unit.read_text()
        .replace(INSTALLED_BIN, str(Path(sys.executable).parent))
        .replace(ENVIRONMENT_FILE, str(env_file))
    )


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: .ci/run installs systemd"
    env_file = tmp_path / "relay.env"
    env_file.write_text("")
    # Given both units as installed, the worker's template as its instance @1
    paths = []
    for unit in sorted(UNITS.glob("*.service")):
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(here(unit, env_file))
        paths.append(f"./{name}")
    assert paths == ["./sqs-relay-server.service", "./sqs-relay-worker@1.service"]
    # When systemd checks them
    done = subprocess.run(
        [analyze, "verify", "--man=no", *paths], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    # Then it has nothing to say: no unknown key, no missing command (it warns on stderr and
    # still exits 0 for an unknown key)
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done


@pytest.mark.parametrize("role", ["server", "worker"])
def test_each_unit_stops_its_relay_process_with_sigterm_well_within_its_stop_timeout(
    role: str,
) -> None:
    settings = service(next(UNITS.glob(f"sqs-relay-{role}*.service")))
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["ExecStart"] == f"{INSTALLED_BIN}/sqs-relay-{role}"
    assert settings["EnvironmentFile"] == ENVIRONMENT_FILE
    assert settings["User"] != "root" and settings["NoNewPrivileges"] == "yes"
    # SIGKILL comes after TimeoutStopSec: the relay's own deadline (SHUTDOWN_TIMEOUT_S, 4 s by
    # default) and a margin fit in it
    from shared.settings import load_settings

    assert int(settings["TimeoutStopSec"]) >= load_settings({}).shutdown_timeout_s + 2


async def test_the_units_commands_relay_an_event_and_stop_on_their_kill_signal(
    processes: Processes, stack: Stack, tmp_path: Path
) -> None:
    # Given the server's and a worker's units' commands, from this environment
    units = {role: service(next(UNITS.glob(f"sqs-relay-{role}*.service")))
             for role in ("server", "worker")}  # fmt: skip
    command = {
        role: settings["ExecStart"].replace(INSTALLED_BIN, str(Path(sys.executable).parent))
        for role, settings in units.items()
    }
    processes.sqs(stack)
    server = processes.spawn("server", [command["server"]], stack.env())
    server.wait_ready(lambda: healthz(stack.base_url)["subscriber"], what="the server's /healthz")
    worker = processes.spawn("worker", [command["worker"]], stack.env())
    # When an event is sent through SQS, then both are stopped as systemd stops them
    await relays_one_event(stack)
    stops = {}
    for role, process in (("worker", worker), ("server", server)):
        sig = signal.Signals[units[role]["KillSignal"]]
        stops[role] = process.stop(sig, timeout_s=float(units[role]["TimeoutStopSec"]))
    # Then the client had it, and each exited by itself, 0, before systemd's SIGKILL
    assert all(code == 0 for code, _ in stops.values()), stops
    report("systemd-stop", **{f"{role}_s": round(s, 2) for role, (_, s) in stops.items()})
