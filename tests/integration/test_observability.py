"""/healthz, /readyz, /metrics (server and worker) and the log formats, on real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.clients import RecordingClient
from tests.integration.helpers import send, wait_queue_empty_async
from tests.processes import Processes, Stack, free_port, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(url: str) -> dict[str, float]:
    """Every sample of a /metrics page as {'name{label="v"}': value}."""
    status, text = get(url)
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


async def test_readyz_waits_for_a_worker_and_healthz_does_not(
    processes: Processes, stack: Stack
) -> None:
    processes.sqs(stack)
    processes.server(stack)
    assert get(f"{stack.base_url}/healthz")[0] == 200
    status, body = get(f"{stack.base_url}/readyz")
    assert status == 503 and "no worker is connected" in body
    worker = processes.worker(stack)
    await asyncio.to_thread(
        wait_until,
        lambda: get(f"{stack.base_url}/readyz")[0] == 200,
        timeout_s=30,
        what="/readyz 200",
    )
    worker.stop()
    await asyncio.to_thread(
        wait_until,
        lambda: get(f"{stack.base_url}/readyz")[0] == 503,
        timeout_s=30,
        what="/readyz 503",
    )


async def test_metrics_of_server_and_worker(processes: Processes, stack: Stack) -> None:
    # Given a relay whose worker serves its own metrics, and a connected client
    metrics_port = free_port()
    processes.sqs(stack)
    processes.server(stack)
    processes.worker(stack, METRICS_PORT=str(metrics_port))
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()

    # When two good messages and one bad one pass
    send(sqs, stack.queue_url, [{"event": "e", "data": 1}, {"event": "e", "data": 2}])
    send(sqs, stack.queue_url, ["not json"], raw=True)
    await client.wait_for(2)
    await wait_queue_empty_async(sqs, stack.queue_url)

    # Then the server's /metrics counts them, with timings and gauges
    server = samples(f"{stack.base_url}/metrics")
    assert server["relay_emitted_total"] == 2
    assert server["relay_duplicate_dropped_total"] == 0
    assert server["relay_connected_clients"] == 1
    assert server["relay_workers_connected"] == 1
    assert server["relay_emit_seconds_count"] == 2
    assert server["relay_end_to_end_seconds_count"] == 2
    assert server["relay_handoff_batch_messages_count"] >= 1
    assert server["relay_event_loop_lag_seconds_count"] >= 1
    # And the worker's own endpoint counts what it received, delivered and dead-lettered
    worker = samples(f"http://127.0.0.1:{metrics_port}/metrics")
    assert worker["relay_received_total"] == 3
    assert worker["relay_delivered_total"] == 2
    assert worker['relay_dead_lettered_total{reason="not_json"}'] == 1
    assert worker["relay_worker_in_flight_messages"] == 0
    await client.close()


async def test_json_logs_and_lifecycle_lines(processes: Processes, stack: Stack) -> None:
    processes.sqs(stack)
    server = processes.server(stack, LOG_FORMAT="json")
    worker = processes.worker(stack, LOG_FORMAT="json")
    await asyncio.to_thread(
        wait_until, lambda: "is ready" in worker.log(), timeout_s=30, what="the worker to be ready"
    )
    for process in (worker, server):
        process.stop(signal.SIGTERM)
    for process in (server, worker):
        lines = [json.loads(line) for line in process.log().splitlines() if line.strip()]
        assert all({"asctime", "level", "name", "message"} <= line.keys() for line in lines)
    messages = " | ".join(line["message"] for line in map(json.loads, server.log().splitlines()))
    for step in (
        "Uvicorn running on",
        "ZeroMQ subscriber bound",
        "connected",
        "Draining",
        "stopped",
    ):
        assert step in messages, step
    messages = " | ".join(line["message"] for line in map(json.loads, worker.log().splitlines()))
    for step in ("Started worker", "Server at", "Received SIGTERM", "Stopped worker"):
        assert step in messages, step


async def test_thread_mode_counts_its_worker_threads_at_healthz_and_metrics(
    processes: Processes, stack: Stack
) -> None:
    # Given a thread-mode server (no worker process) and a client
    processes.sqs(stack)
    processes.server(stack, CONSUMER="thread", WORKER_THREADS="2")
    client = await RecordingClient().connect(stack.base_url)
    sqs = stack.sqs_client()

    # When 10 messages and one that is not JSON go through its worker threads
    send(sqs, stack.queue_url, [{"event": "n", "data": n} for n in range(10)])
    send(sqs, stack.queue_url, ["{not json"], raw=True)
    await client.wait_for(10)
    await wait_queue_empty_async(sqs, stack.queue_url)

    # Then the server's own /healthz and /metrics count what its worker threads did (main:
    # they counted into private counters that nothing showed)
    await stack.wait_counter("delivered", 10, timeout_s=30)
    counters = (await asyncio.to_thread(get, f"{stack.base_url}/healthz"))[1]
    # SQS is at-least-once: a message can be received twice (seen once in CI, with two
    # threads polling the emulator: 12 receipts of 11 messages), and is still delivered once
    received = json.loads(counters)["counters"]["received"]
    assert received >= 11
    found = await asyncio.to_thread(samples, f"{stack.base_url}/metrics")
    assert found["relay_received_total"] >= received
    assert found["relay_delivered_total"] == 10
    assert found['relay_dead_lettered_total{reason="not_json"}'] == 1
    assert found["relay_emitted_total"] == 10
    await client.close()
