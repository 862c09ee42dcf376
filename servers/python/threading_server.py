#!/usr/bin/env python3
"""socketserver.ThreadingTCPServer: a thread per client, from the standard library.

    python3 threading_server.py HOST:PORT

The tutorial's version at its best: allow_reuse_address, a real request queue, daemon
threads (so SIGTERM does not wait for idle clients), recv() looped to end of file with
sendall(), resets ending only their connection, and a pause when accept() fails for lack of
descriptors (socketserver would otherwise retry at once, in a busy loop).
"""
import errno
import signal
import socketserver
import sys
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        try:
            return super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.1)  # out of descriptors: wait for clients to leave
            raise

    def handle_error(self, request, client_address):
        pass  # a client's failure is that client's; nothing to print


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Server((host, int(port)), Echo) as server:
        print(f"listening on {host}:{server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
