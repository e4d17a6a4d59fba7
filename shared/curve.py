"""ZeroMQ CURVE settings for either side, and the check that keeps ZeroMQ off the network
without them. Keys are Z85 text, as `python -m server.keys` prints them."""

from __future__ import annotations

from typing import Any

import zmq

from shared.settings import Settings, SettingsError


def check_exposure(settings: Settings) -> None:
    """Refuse a ZeroMQ bind beyond loopback without CURVE, and half-configured CURVE."""
    secret = settings.zmq_curve_server_secret
    if not settings.zmq_bind_is_local and secret is None:
        raise SettingsError(
            f"invalid setting: ZMQ_BIND={settings.zmq_bind} is reachable beyond this machine; "
            "bind 127.0.0.1 or ipc://, or set ZMQ_CURVE_SERVER_SECRET and ZMQ_CURVE_CLIENT_KEYS "
            "(python -m server.keys makes key pairs)"
        )
    if secret is not None and not settings.zmq_curve_client_keys:
        raise SettingsError(
            "invalid setting: ZMQ_CURVE_CLIENT_KEYS is empty, so no worker could connect; list "
            "the workers' public keys"
        )


def configure_server(sock: zmq.Socket[Any], settings: Settings) -> bool:
    """Make `sock` a CURVE server if a server secret is set; True if it did."""
    if settings.zmq_curve_server_secret is None:
        return False
    secret = settings.zmq_curve_server_secret.get_secret_value().encode()
    sock.curve_secretkey = secret
    sock.curve_publickey = zmq.curve_public(secret)
    sock.curve_server = True
    return True


def configure_client(sock: zmq.Socket[Any], settings: Settings) -> bool:
    """Make `sock` a CURVE client if the server's public key is set; True if it did."""
    if settings.zmq_curve_server_public is None:
        return False
    if settings.zmq_curve_client_secret is None:
        raise SettingsError(
            "invalid setting: ZMQ_CURVE_SERVER_PUBLIC is set but ZMQ_CURVE_CLIENT_SECRET is not; "
            "a worker needs its own key pair (python -m server.keys)"
        )
    secret = settings.zmq_curve_client_secret.get_secret_value().encode()
    sock.curve_secretkey = secret
    sock.curve_publickey = zmq.curve_public(secret)
    sock.curve_serverkey = settings.zmq_curve_server_public.encode()
    return True


class AllowedKeys:
    """The ZAP credentials provider: a worker's public key must be listed."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = frozenset(key.encode() for key in keys)

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self._keys
