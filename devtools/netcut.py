"""A TCP forwarder on loopback that a test or a benchmark can cut the way a network does.

`cut()` resets the client's side of every open connection and leaves the server's side open
and silent (no FIN, no RST), so the server learns of it only from its ping timeout; while the
network is down new connections are reset at once, until `restore()`. asyncio streams, a
few dozen lines: no library does this on loopback without root (tc/netem need a namespace).

In a process of its own (the benchmark's, to cut one server from Redis)::

    python -m devtools.netcut --target 6379 --port 6380   # SIGUSR1 cuts, SIGUSR2 restores
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class NetCut:
    """A cuttable network between clients (they connect to ``port``) and the server.

    Usage::

        async with NetCut(server_port) as net:      # clients connect to net.port
            net.cut()                               # the network goes
            ...                                     # events sent meanwhile reach nobody
            net.restore()                           # and comes back
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.port = port
        self.down = False
        self.cuts = 0
        self._pairs: list[_Pair] = []
        self._silent: list[asyncio.StreamWriter] = []  # servers' sides of cut connections
        self._listener: asyncio.Server | None = None

    async def __aenter__(self) -> NetCut:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._listener is not None:
            self._listener.close()
        for pair in self._pairs:
            self._stop(pair)
            pair.client.transport.abort()
            pair.server.transport.abort()
        for writer in self._silent:
            writer.transport.abort()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Every open connection goes dead; new ones fail until `restore()`."""
        self.down = True
        self.cuts += 1
        for pair in self._pairs:
            self._stop(pair)
            pair.client.transport.abort()  # the client sees a reset and reconnects
            self._silent.append(pair.server)  # the server sees nothing at all
        self._pairs.clear()

    def restore(self) -> None:
        self.down = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        loop = asyncio.get_running_loop()
        pair.pumps = [
            loop.create_task(self._pump(reader, up_writer)),
            loop.create_task(self._pump(up_reader, writer)),
        ]
        self._pairs.append(pair)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()  # a real close passes through as one

    @staticmethod
    def _stop(pair: _Pair) -> None:
        for pump in pair.pumps:
            pump.cancel()


async def _serve(target: int, port: int) -> None:
    async with NetCut(target, port) as net:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, net.cut)
        loop.add_signal_handler(signal.SIGUSR2, net.restore)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print(f"netcut: 127.0.0.1:{net.port} -> 127.0.0.1:{target} ready", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.netcut", description=__doc__)
    parser.add_argument("--target", type=int, required=True, help="port to forward to")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.target, args.port))


if __name__ == "__main__":
    main()
