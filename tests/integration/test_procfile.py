"""The Procfile itself, run by honcho as the README says, end to end."""

from __future__ import annotations

import asyncio
import signal
import subprocess

from shared.sqs import make_sqs_client
from tests.clients import RecordingClient
from tests.processes import PYTHON, ROOT, Processes, Stack, healthz, wait_until


async def test_honcho_runs_the_procfile_delivers_and_stops_cleanly(
    processes: Processes, stack: Stack
) -> None:
    # Given `honcho start` with its base port from PORT (the server is first in the Procfile)
    # and the default 20-second long poll, which must not hold shutdown hostage
    env = stack.env()
    del env["SQS_WAIT_S"]
    honcho = processes.start("honcho", ["-m", "honcho", "-f", str(ROOT / "Procfile"), "start"], env)
    await asyncio.to_thread(
        wait_until,
        lambda: honcho.check_alive() or healthz(stack.base_url)["subscriber"],
        timeout_s=60,
        what="the server started by honcho",
    )
    sqs = make_sqs_client(stack.settings())
    await asyncio.to_thread(
        wait_until,
        lambda: sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"]),
        timeout_s=60,
        what="the queue of the emulator started by honcho",
    )
    client = await RecordingClient().connect(stack.base_url)

    # When the README's send command puts an event on the queue
    sent = await asyncio.to_thread(
        subprocess.run,
        [PYTHON, "-m", "producer", "--event", "hello", "--data", '{"hi": 1}'],
        env=env,
        cwd=honcho.log_path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr

    # Then the client receives it
    [(event, payload)] = await client.wait_for(1)
    assert (event, payload["data"]) == ("hello", {"hi": 1})
    assert sent.stdout.startswith(f"MessageId {payload['id']}")
    await client.close()

    # And SIGTERM to honcho stops every process by itself, before honcho's 5 s SIGKILL
    code, _elapsed = await asyncio.to_thread(honcho.stop, signal.SIGTERM, 20)
    log = honcho.log()
    assert "SIGKILL" not in log
    for name in ("server.1", "worker.1", "sqs.1"):
        assert f"{name} stopped (rc=0)" in log, log
    assert code == 143  # honcho's own convention after SIGTERM: 128 + 15
