"""`python -m server.keys` (the command `sqs-relay-keys`): print a new ZeroMQ CURVE key pair
(Z85), for .env."""

from __future__ import annotations

import argparse
import sys

import zmq

DESCRIPTION = """\
Print a new ZeroMQ CURVE key pair (Z85) as .env lines, to encrypt and authenticate the
worker-to-server hand-off (installed as the command sqs-relay-keys). The server gets
ZMQ_CURVE_SERVER_SECRET and every worker ZMQ_CURVE_SERVER_PUBLIC; each worker gets its own
ZMQ_CURVE_CLIENT_SECRET and the server lists the workers' public keys in ZMQ_CURVE_CLIENT_KEYS.
Put them in the environment or .env of each process (docs/security.md, docs/settings.md).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.keys",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--for",
        dest="role",
        choices=["server", "worker"],
        default="server",
        help="whose pair: the server's (default) or one worker's",
    )
    args = parser.parse_args(argv)
    public, secret = zmq.curve_keypair()
    if args.role == "server":
        print(f"ZMQ_CURVE_SERVER_SECRET={secret.decode()}")
        print(f"ZMQ_CURVE_SERVER_PUBLIC={public.decode()}")
    else:
        print(f"ZMQ_CURVE_CLIENT_SECRET={secret.decode()}")
        print(f"# add to the server's ZMQ_CURVE_CLIENT_KEYS: {public.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
