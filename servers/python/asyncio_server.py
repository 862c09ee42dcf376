#!/usr/bin/env python3
"""asyncio streams: a task per client on one event loop.

    python3 asyncio_server.py HOST:PORT

The tutorial's version at its best: `await writer.drain()` after every write (without it a
client that does not read makes the server buffer without bound), read() until it returns
b'', resets ending only their client, reuse_address and a real backlog, and SIGTERM closing
the listener and every client, then exiting 0. asyncio itself pauses accepting for a second
when descriptors run out.
"""
import asyncio
import signal
import sys


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    writers = set()

    async def echo(reader, writer):
        writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(echo, host, int(port), backlog=128, reuse_address=True)
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    for writer in list(writers):
        writer.close()


if __name__ == "__main__":
    asyncio.run(main())
