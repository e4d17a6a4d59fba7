"""A Socket.IO client written at the packet level over a plain socket, so that it can do
what no library client does: stop reading. (A client on the websockets library keeps
reading into its own memory even when told not to, and the server never sees it back up.)"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any


class RawClient:
    """Usage (blocking calls; wrap them in `asyncio.to_thread` where they may wait)::

    client = RawClient(port)                     # WebSocket handshake, nothing read after
    client.connect({"token": token()})           # Socket.IO CONNECT to "/"
    client.emit(1, "join", {"room": "shop"})     # and then it never reads
    seen = client.read_all()                     # everything the server sent, at last
    """

    def __init__(self, port: int, *, receive_buffer: int | None = None) -> None:
        """`receive_buffer`: the socket's SO_RCVBUF, set before it connects (a small one
        makes the server's side of the connection back up after kilobytes, not megabytes)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)  # byte by byte: nothing past the headers is read
        assert response.startswith(b"HTTP/1.1 101"), response

    def connect(self, auth: dict[str, Any]) -> None:
        self.send_text("40" + json.dumps(auth))

    def emit(self, ack_id: int, event: str, data: Any) -> None:
        self.send_text(f"42{ack_id}" + json.dumps([event, data]))

    def send_text(self, text: str) -> None:
        """One masked WebSocket text frame (RFC 6455: a client masks what it sends)."""
        payload, mask = text.encode(), os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([0x81, 0x80 | length])
        elif length < 1 << 16:
            header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", length)
        else:
            header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def next_frame(self, timeout_s: float = 30) -> tuple[int, bytes]:
        """The server's next WebSocket frame, whole: (opcode, payload). A server's frames
        are unmasked (RFC 6455 5.1)."""
        self.sock.settimeout(timeout_s)
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._exactly(8))
        return first & 0x0F, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def read_all(self, timeout_s: float = 60) -> bytes:
        """Read what the server sent until it closes (or `timeout_s` passes)."""
        self.sock.settimeout(timeout_s)
        chunks = []
        with contextlib.suppress(TimeoutError, OSError):
            while chunk := self.sock.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)

    def how_it_ends(self, timeout_s: float = 30) -> str:
        """Read until the connection ends: "reset" (the server aborted it), "closed" (a clean
        close), or "timeout"."""
        self.sock.settimeout(timeout_s)
        try:
            while self.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "timeout"
        return "closed"

    def close(self) -> None:
        self.sock.close()
