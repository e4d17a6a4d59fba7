"""What a server endpoint in ZMQ_CONNECT stands for: a host name is resolved again and
again, as container platforms give one name to all their replicas (worker/handoff.py)."""

from __future__ import annotations

import ipaddress
import socket


def resolve_endpoint(endpoint: str) -> list[str]:
    """The endpoints a `tcp://host:port` with a host name stands for, one per address (IPv4
    ones if it has any); any other endpoint stands for itself. OSError if it does not resolve.

    >>> resolve_endpoint("tcp://127.0.0.1:5555"), resolve_endpoint("ipc:///tmp/relay")
    (['tcp://127.0.0.1:5555'], ['ipc:///tmp/relay'])
    """
    transport, _, rest = endpoint.partition("://")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if transport != "tcp" or not host or host == "*" or _is_address(host):
        return [endpoint]
    infos = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    v4 = [info[4][0] for info in infos if info[0] == socket.AF_INET]
    addresses = v4 or [f"[{info[4][0]}]" for info in infos if info[0] == socket.AF_INET6]
    return [f"tcp://{address}:{port}" for address in dict.fromkeys(addresses)]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
