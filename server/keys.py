"""`python -m server.keys`: print a new ZeroMQ CURVE key pair (Z85), for .env."""

from __future__ import annotations

import argparse

import zmq


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server.keys",
        description="Print a CURVE key pair. The server gets ZMQ_CURVE_SERVER_SECRET and every "
        "worker ZMQ_CURVE_SERVER_PUBLIC; each worker gets its own ZMQ_CURVE_CLIENT_SECRET and the "
        "server lists the workers' public keys in ZMQ_CURVE_CLIENT_KEYS.",
    )
    parser.add_argument("--for", dest="role", choices=["server", "worker"], default="server")
    args = parser.parse_args(argv)
    public, secret = zmq.curve_keypair()
    if args.role == "server":
        print(f"ZMQ_CURVE_SERVER_SECRET={secret.decode()}")
        print(f"ZMQ_CURVE_SERVER_PUBLIC={public.decode()}")
    else:
        print(f"ZMQ_CURVE_CLIENT_SECRET={secret.decode()}")
        print(f"# add to the server's ZMQ_CURVE_CLIENT_KEYS: {public.decode()}")


if __name__ == "__main__":
    main()
