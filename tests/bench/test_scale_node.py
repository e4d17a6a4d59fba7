"""The `node` case of `python -m bench.scale`: Node's socket.io 4 (bench/node_server.mjs)
takes the same clients, broadcasts this relay's payload when the bench asks, and the report
puts every other case beside it as a ratio. No timing is asserted: speed is measured in
bench/, never in a test."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bench import node
from bench.results import Percentiles, RunMeta
from bench.scale import ScaleCase, ScaleResults, ScaleStep
from bench.scale_report import render
from server.payload import client_payload, encode_data
from shared.envelope import Envelope
from shared.wire import Delivery
from tests.clients import RecordingClient
from tests.processes import PYTHON, ROOT


@pytest.fixture
def node_server(tmp_path: Path) -> Iterator[node.NodeServer]:
    node.ensure_node_packages()
    server = node.NodeServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_a_tiny_node_run_connects_everyone_delivers_every_broadcast_and_reports(
    tmp_path: Path,
) -> None:
    # Given 20 clients on Node's socket.io, When two short steps are offered
    result = subprocess.run(
        [PYTHON, "-m", "bench.scale", "--clients", "20", "--modes", "node",
         "--duration", "1", "--deliveries", "200,400", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    # Then every client connected, every broadcast reached every client, and each figure
    # the comparison needs was measured on the Node process
    assert result.returncode == 0, result.stderr[-3000:]
    results = ScaleResults.model_validate_json((tmp_path / "scale.json").read_text())
    locked = json.loads(node.LOCKFILE.read_text())["packages"]["node_modules/socket.io"]
    assert results.node_server == f"socket.io {locked['version']}"
    assert results.load_avg_start is not None and results.load_avg_end is not None
    [case] = results.cases
    assert (case.mode, case.notes, case.connected, case.connect_failed) == ("node", [], 20, 0)
    assert case.connect_s is not None and case.connect_cpu_s is not None
    assert case.rss_idle_mb and case.rss_connected_mb and case.load_1m is not None
    assert [s.deliveries_offered for s in case.steps] == [200, 400]
    for step in case.steps:
        # 10 and 20 broadcasts/s for 1 s, to 20 clients
        assert step.sent == step.deliveries_offered / 20 and step.delivered_share == 1.0, step
        assert step.latency_ms.p99 is not None and step.us_per_delivery is not None
        # the payload says when Node emitted it, as this relay's does
        assert step.emit_latency_ms.measured and step.worker_latency_ms.measured
    report = (tmp_path / "scale.md").read_text()
    assert "| Node socket.io 4 | 20 |" in report and "## Against Node's socket.io" in report
    assert (tmp_path / "scale.png").exists()


async def test_node_broadcasts_this_relays_payload_field_for_field_to_an_authed_client(
    node_server: node.NodeServer,
) -> None:
    # Given a python-socketio client that sends a token, as this relay's clients do
    client = await RecordingClient().connect(node_server.url, transports=["websocket"])
    try:
        # When the bench asks for two broadcasts
        report = await asyncio.to_thread(
            node_server.offer, rate=10, duration_s=0.2, batch=1, seq_start=7
        )
        assert report["sent"] == 2
        events = await client.wait_for(2)
    finally:
        await client.close()
    # Then they are "bench" events with this relay's payload: the same fields in the same
    # order and, for data of the same size, the same size on the wire (the seq, the offset
    # and the clock's digits may differ by a few bytes)
    assert [event for event, _ in events] == ["bench", "bench"]
    payload = events[0][1]
    assert payload["data"]["seq"] == 7 and payload["room"] is None
    assert payload["sent_ms"] == payload["received_ms"] <= payload["emitted_ms"]
    data, _ = encode_data({"seq": 7, "t": time.time()})
    delivery = Delivery(
        payload["id"], Envelope("bench", None), sent_ms=payload["sent_ms"], received_ms=1
    )
    relays = client_payload(delivery, None, 1, secrets.token_hex(6), data)
    relays["received_ms"] = payload["received_ms"]
    assert list(payload) == list(relays)
    assert abs(len(orjson.dumps(payload)) - len(orjson.dumps(relays))) <= 6


def _case(mode: str, *, connect_cpu_s: float, rss_mb: float, us: float, emit: float) -> ScaleCase:
    step = ScaleStep(
        deliveries_offered=5000, rate=5, sent=50, deliveries=50_000, delivered_share=1.0,
        deliveries_per_s=5000, latency_ms=Percentiles(p50=10, p99=40, max=50),
        worker_latency_ms=Percentiles(), emit_latency_ms=Percentiles(p50=5, p99=emit, max=60),
        server_cpu_s=us * 0.05, us_per_delivery=us, clients_us_per_delivery=10,
        peak_server_rss_mb=rss_mb, saturated=False,
    )  # fmt: skip
    return ScaleCase(
        mode=mode, clients=1000, connected=1000, connect_s=1.0, connect_cpu_s=connect_cpu_s,
        rss_idle_mb=50, rss_connected_mb=rss_mb, steps=[step], max_sustained_deliveries=5000,
    )  # fmt: skip


def test_the_report_gives_every_figure_as_a_ratio_to_node_with_as_many_clients() -> None:
    results = ScaleResults(
        meta=RunMeta(command="python -m bench.scale"),
        cases=[
            _case("node", connect_cpu_s=0.5, rss_mb=100, us=20, emit=100),
            _case("process", connect_cpu_s=1.0, rss_mb=75, us=10, emit=150),
        ],
        node_server="socket.io 4.8.4",
        load_avg_start=(2.5, 2.0, 1.5),
        load_avg_end=(3.0, 2.0, 1.5),
    )
    report = render(results)
    # CPU per connect 1.00 ms against 0.50; RSS per connection 25.6 KB against 51.2
    row = "| process x2 | 1,000 | 1.00 (2.00x) | 1.00 (1.00x) | 50 (1.00x) | 26 (0.50x) |"
    assert row in report
    # CPU per delivery 10 us against 20; emit -> client p99 150 ms against 100
    assert (
        "| process x2 | 1,000 | 5,000 | 10.0 (0.50x) | 10.0 (1.00x) | 40.0 (1.00x) "
        "| 150.0 (1.50x) |" in report
    )
    assert "Load average (1, 5, 15 min): 2.5, 2.0, 1.5 as the run began" in report
    assert "Node's socket.io 4.8.4 with its default settings" in report


def test_without_a_node_case_the_report_has_no_ratios() -> None:
    results = ScaleResults(
        meta=RunMeta(), cases=[_case("process", connect_cpu_s=1, rss_mb=75, us=10, emit=150)]
    )
    report = render(results)
    assert "| process x2 | 1,000 |" in report and "Against Node" not in report
