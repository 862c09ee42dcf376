#!/usr/bin/env python3
"""An event loop with selectors: one thread, non-blocking sockets, readiness events.

    python3 selectors_server.py HOST:PORT

What the tutorials' selectors example needs to be correct: a per-client buffer of bytes not
yet written, bounded (a client that does not read is not read from either); interest in
writability only while bytes wait; end of file (recv() == b'') flushes what waits, then
closes; resets close only their client; accept() drained until it would block, and paused
for 100 ms when descriptors run out (no busy loop); SIGTERM exits 0.
"""
import errno
import selectors
import signal
import socket
import sys
import time

LIMIT = 64 * 1024  # bytes waiting per client before its reads stop


class Client:
    def __init__(self, conn):
        self.conn = conn
        self.pending = bytearray()
        self.eof = False


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(128)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    print(f"listening on {host}:{listener.getsockname()[1]}", flush=True)
    resume_accept = None

    def interest(client):
        events = 0 if client.eof or len(client.pending) >= LIMIT else selectors.EVENT_READ
        if client.pending:
            events |= selectors.EVENT_WRITE
        if events:
            sel.modify(client.conn, events, client)
        else:
            close(client)

    def close(client):
        sel.unregister(client.conn)
        client.conn.close()

    while True:
        timeout = None
        if resume_accept is not None:
            timeout = max(0.0, resume_accept - time.monotonic())
            if timeout == 0.0:
                sel.register(listener, selectors.EVENT_READ, None)
                resume_accept, timeout = None, None
        for key, events in sel.select(timeout):
            if key.data is None:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno in (errno.EMFILE, errno.ENFILE):
                            sel.unregister(listener)  # out of descriptors: pause accepting
                            resume_accept = time.monotonic() + 0.1
                            break
                        raise
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, Client(conn))
                continue
            client = key.data
            try:
                if events & selectors.EVENT_READ:
                    data = client.conn.recv(65536)
                    if data:
                        client.pending += data
                    else:
                        client.eof = True
                if events & selectors.EVENT_WRITE and client.pending:
                    sent = client.conn.send(client.pending)
                    del client.pending[:sent]
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                close(client)
                continue
            interest(client)


if __name__ == "__main__":
    main()
