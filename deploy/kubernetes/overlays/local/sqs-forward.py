"""A TCP forwarder beside the SQS emulator in its pod: 0.0.0.0:9325 -> 127.0.0.1:9324.

`sqs-relay-emulator` serves only the loopback address of its SQS_QUEUE_URL (it refuses any
other: sqs_emulator/__main__.py), which in a pod nothing outside the pod reaches. This
forwarder, in a second container of the same pod (one network namespace), makes it reachable
through the Service. Local overlay only; real AWS needs none of it. Standard library only, run
with the relay image's Python.
"""

from __future__ import annotations

import asyncio
import os
import signal

LISTEN_PORT = int(os.environ.get("FORWARD_LISTEN_PORT", "9325"))
TARGET_PORT = int(os.environ.get("FORWARD_TARGET_PORT", "9324"))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", TARGET_PORT)
    except OSError:
        client_writer.close()  # the emulator is not up yet: the client retries
        return
    await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, "0.0.0.0", LISTEN_PORT)
    print(f"Forwarding 0.0.0.0:{LISTEN_PORT} to 127.0.0.1:{TARGET_PORT}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
