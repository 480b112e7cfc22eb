"""The floor: the bare Python socket loop no Python HTTP server can beat.

Thread per connection; ``recv`` into a buffer; for each complete request head (counted by its
terminating CRLFCRLF, RFC 9112 section 2.1) ``sendall`` one canned keep-alive response. No
parsing, no headers object, no logging: whatever a real server spends beyond this is the price
of being an HTTP server. Only meaningful for GET requests without bodies, which is all wrk sends.

    python3 benchmarks/servers/floor.py --port 8080
"""

from __future__ import annotations

import argparse
import socket
import threading

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
            b"Hello World\n")
END = b"\r\n\r\n"


def serve_connection(conn: socket.socket) -> None:
    """Answer every complete request head on ``conn`` until the peer closes."""
    buf = b""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            n = buf.count(END)
            if n:
                buf = buf[buf.rindex(END) + 4:]
                try:
                    conn.sendall(RESPONSE * n)
                except OSError:
                    return


def main() -> None:
    """Accept forever on 127.0.0.1:PORT, one daemon thread per connection."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with socket.create_server(("127.0.0.1", args.port), backlog=128) as srv:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
