"""The Procfile itself, run by honcho as the README and docs/quickstart.md say, end to end."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from pathlib import Path

from producer import publish
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

    # When the README's send command (docs/quickstart.md's too) puts an event on the queue
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


async def test_honcho_runs_the_whole_cluster_from_procfile_cluster(
    processes: Processes, stack: Stack
) -> None:
    # Given `honcho -f Procfile.cluster start` (docs/cluster.md's command for several servers): the
    # embedded SQS, redis-server, three servers, two workers and nginx on :8000
    assert shutil.which("redis-server") and (shutil.which("nginx") or Path("/usr/sbin/nginx"))
    env = stack.env()
    honcho = processes.start(
        "honcho", ["-m", "honcho", "-f", str(ROOT / "Procfile.cluster"), "start"], env
    )
    url = "http://127.0.0.1:8000"
    await asyncio.to_thread(
        wait_until,
        lambda: honcho.check_alive() or healthz(url)["redis"],
        timeout_s=90,
        what="nginx and a server on Redis behind it, started by honcho",
    )
    servers = [f"http://127.0.0.1:{port}" for port in (8001, 8002, 8003)]
    seen: dict[str, tuple[object, object]] = {}  # server: (redis, workers_connected), last look

    def all_ready() -> bool:
        for server in servers:
            health = healthz(server)
            seen[server] = (health["redis"], health["workers_connected"])
        return all(redis and workers == 2 for redis, workers in seen.values())

    try:
        await asyncio.to_thread(
            wait_until,
            all_ready,
            timeout_s=60,
            what="three servers on Redis, each with both workers",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last seen (redis, workers_connected): {seen}") from None
    client = await RecordingClient().connect(url)

    # When an event is sent, it reaches the client through nginx, and every server emitted it
    sqs = make_sqs_client(stack.settings())
    sent = await asyncio.to_thread(publish, sqs, stack.queue_url, "hello", {"hi": 1})
    [(event, payload)] = await client.wait_for(1)
    assert (event, payload["id"]) == ("hello", sent)
    await client.close()
    for server in servers:
        assert healthz(server)["counters"]["emitted"] == 1

    # And SIGTERM to honcho stops every process by itself
    await asyncio.to_thread(honcho.stop, signal.SIGTERM, 20)
    log = honcho.log()
    for name in ("sqs", "redis", "server1", "server2", "server3", "worker1", "worker2"):
        assert f"{name}.1 stopped (rc=0)" in log, log
    assert "balancer.1 stopped" in log
