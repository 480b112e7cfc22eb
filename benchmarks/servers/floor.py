"""The floor: the bare Python socket loop no Python HTTP server can beat.

Thread per connection; ``recv`` into a buffer; for each complete request head (counted by its
terminating CRLFCRLF, RFC 9112 section 2.1) ``sendall`` one canned keep-alive response. No
parsing, no headers object, no logging: whatever a real server spends beyond this is the price
of being an HTTP server. Only meaningful for GET requests without bodies, which is all wrk sends.

    python3 benchmarks/servers/floor.py --port 8080 [--python-work N]

``--python-work N`` adds a pure-Python loop of N additions per request (250 is about 4.4 us
on the reference machine): it shows what holding the GIL for a few microseconds per request
costs 16 threads sharing it, i.e. how far below this floor any Python HTTP server must land.
"""

from __future__ import annotations

import argparse
import socket
import threading

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
            b"Hello World\n")
END = b"\r\n\r\n"


#: Iterations of pure-Python work per request (--python-work); 0 for the real floor.
PYTHON_WORK = 0


def python_work(n: int) -> int:
    """Hold the GIL for a while, the way parsing and a handler would."""
    total = 0
    for i in range(n):
        total += i
    return total


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
            if PYTHON_WORK:
                python_work(PYTHON_WORK * n)
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
    parser.add_argument("--python-work", type=int, default=0, metavar="N",
                        help="pure-Python additions per request (default 0: the real floor)")
    args = parser.parse_args()
    global PYTHON_WORK
    PYTHON_WORK = args.python_work
    with socket.create_server(("127.0.0.1", args.port), backlog=128) as srv:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
