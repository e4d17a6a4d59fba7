"""What a single server loads (server/adapters/imports.py): python-socketio's optional
packages and, outside cluster mode, Redis and boto3 stay out of its memory. Each case runs in
a fresh interpreter, importing what `python -m server` imports, in its order."""

from __future__ import annotations

import subprocess
import sys

#: What `python -m server`'s main() imports once the settings are read.
SERVER_IMPORTS = (
    "import uvicorn, server.relay, server.web.app, server.adapters.wsprotocol, "
    "server.adapters.httpprotocol, server.adapters.uvicorn_server, server.web.assets"
)
HEAVY = ("redis", "boto3", "botocore", "aiohttp", "requests", "worker", "opentelemetry")


def loaded(code: str) -> set[str]:
    """The top-level packages loaded after `code`, in a fresh interpreter."""
    program = (
        "import sys\n"
        f"{code}\n"
        "print(' '.join(sorted({m.split('.')[0] for m, v in sys.modules.items() if v})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_servers_entry_point_imports_no_socketio_before_it_has_read_the_settings() -> None:
    # Given only the entry point's module, then nothing of python-socketio is imported yet:
    # main() can still leave its optional packages out
    assert not {"socketio", "engineio", "uvicorn"} & loaded("import server.__main__")


def test_a_single_server_loads_no_redis_boto3_http_client_or_worker_code() -> None:
    # Given a server without REDIS_URL: the optional packages left out, then its modules and
    # a relay built with the default settings (its mode's parts picked)
    code = (
        "from server.adapters.imports import leave_out_unused\n"
        "assert 'redis' in leave_out_unused(cluster=False)\n"
        f"{SERVER_IMPORTS}\n"
        "from shared.settings import load_settings\n"
        "server.web.app.create_app(server.relay.Relay(load_settings({'AUTH': 'none'})))\n"
    )
    # Then none of the heavy packages it never runs is in memory
    assert not set(HEAVY) & loaded(code)


def test_a_server_in_cluster_mode_still_loads_redis() -> None:
    # Given cluster mode, then redis is not left out, and its Redis-backed parts load
    code = (
        "from server.adapters.imports import leave_out_unused\n"
        "assert 'redis' not in leave_out_unused(cluster=True)\n"
        f"{SERVER_IMPORTS}\n"
        "from shared.settings import load_settings\n"
        "settings = load_settings({'AUTH': 'none', 'REDIS_URL': 'redis://127.0.0.1:1/0'})\n"
        "server.relay.Relay(settings)\n"
    )
    found = loaded(code)
    assert "redis" in found
    assert "aiohttp" not in found


def test_with_traces_on_requests_stays_for_the_otlp_exporter() -> None:
    # Given traces on, then the OTLP/HTTP exporter (which sends with requests) loads
    code = (
        "from server.adapters.imports import leave_out_unused\n"
        "assert 'requests' not in leave_out_unused(cluster=False, tracing=True)\n"
        "import socketio\n"
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
    )
    found = loaded(code)
    assert "requests" in found
    assert "redis" not in found
