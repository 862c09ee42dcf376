#!/usr/bin/env python3
"""The threading server over TLS: ssl.SSLContext.wrap_socket on each accepted connection.

    python3 ssl_server.py [tls:]HOST:PORT CERT.pem KEY.pem

The tutorial's SSL server at its best: the handshake in the client's own thread (so a client
that stalls in it holds only that thread) with a deadline, TCP_NODELAY (see TlsEcho.setup),
TLS 1.2 at least, recv() looped to end of file with sendall(), close_notify answered with
close_notify (unwrap), and the threading server's reuse address, request queue, daemon threads
and pause when accept() fails for lack of descriptors.
"""
import signal
import socket
import ssl
import sys

from threading_server import Echo, Server

# How long a client may take to finish its handshake.
HANDSHAKE_TIMEOUT = 10.0


class TlsEcho(Echo):
    def setup(self):
        # Without it, a client's first message waited about 40 ms for its echo: TLS 1.3 sends
        # the session tickets after the handshake, Nagle holds the echo until they are
        # acknowledged, and the client delays that ACK (churn: 90 connections/s, 1,140 with it).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        self.request = self.server.context.wrap_socket(self.request, server_side=True)
        self.request.settimeout(None)

    def handle(self):
        super().handle()
        try:
            # The client's close_notify ended the loop: answer with ours.
            self.request.unwrap()
        except (OSError, ValueError):
            pass


class TlsServer(Server):
    def __init__(self, address, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert, key)
        super().__init__(address, TlsEcho)

    def finish_request(self, request, client_address):
        # A handshake that fails or times out costs that client only.
        try:
            super().finish_request(request, client_address)
        except (ssl.SSLError, socket.timeout, OSError):
            pass


def main():
    address, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = address.removeprefix("tls:").rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with TlsServer((host, int(port)), cert, key) as server:
        print(f"listening on tls:{host}:{server.server_address[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
