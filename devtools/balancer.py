"""`python -m devtools.balancer`: nginx in front of several relay servers, in the foreground.

It fills in deploy/nginx.conf.template (the listen address, one ``server`` line per relay
server) in a directory of its own and replaces itself with nginx, so that honcho's or a
test's signals reach nginx directly (SIGTERM: nginx's fast stop; SIGQUIT: graceful).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf.template"


def render(listen: str, servers: list[str], directory: Path) -> str:
    """The nginx configuration for `servers` (host:port each), listening on `listen`."""
    lines = "\n".join(f"        server {s} max_fails=1 fail_timeout=5s;" for s in servers)
    text = TEMPLATE.read_text()
    for name, value in (("dir", str(directory)), ("listen", listen), ("servers", lines)):
        text = text.replace("{{" + name + "}}", value)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.balancer", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8000", help="address nginx listens on")
    parser.add_argument(
        "--servers",
        required=True,
        help="comma-separated host:port of the relay servers, e.g. 127.0.0.1:8001,127.0.0.1:8002",
    )
    parser.add_argument("--dir", help="nginx's working directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if nginx is None:
        print("balancer: nginx not found: apt-get install nginx", file=sys.stderr)
        return 2
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        print("balancer: --servers lists no server", file=sys.stderr)
        return 2
    directory = Path(args.dir or tempfile.mkdtemp(prefix="relay-nginx-")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # nginx's workers drop root and create their temp folders here
    config = directory / "nginx.conf"
    config.write_text(render(args.listen, servers, directory))
    print(f"balancer: nginx on {args.listen} in front of {', '.join(servers)}", flush=True)
    os.execv(nginx, [nginx, "-p", str(directory), "-c", str(config)])


if __name__ == "__main__":
    sys.exit(main())
