#!/usr/bin/env python3
"""A blocking echo server: one client at a time, as the socket tutorials begin.

    python3 blocking_server.py HOST:PORT

Correct where the tutorials' first version is not: SO_REUSEADDR (a restart does not fail on
a port in TIME_WAIT), a real listen backlog, recv() looped until it returns b'' (end of file),
sendall() (send() may write only part), a client that resets its connection ends only that
connection, and SIGTERM exits 0. It serves one client at a time by design: check it with
`echo-bench conformance --expect-serial`.
"""
import signal
import socket
import sys


def serve(conn):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:  # b'': the client closed its side
                    return
                conn.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return  # that client is gone; the server goes on


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(128)
        print(f"listening on {host}:{listener.getsockname()[1]}", flush=True)
        while True:
            conn, _ = listener.accept()
            serve(conn)


if __name__ == "__main__":
    main()
