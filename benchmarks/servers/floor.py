"""The floor: the bare Python socket loop no Python HTTP server can beat.

Thread per connection; ``recv`` into a buffer; for each complete request head (counted by its
terminating CRLFCRLF, RFC 9112 section 2.1) ``sendall`` one canned keep-alive response. No
parsing, no headers object, no logging: whatever a real server spends beyond this is the price
of being an HTTP server. Only meaningful for GET requests without bodies, which is all wrk sends.

``--epoll``: the same work on one thread with a level-triggered epoll loop instead of a thread
per connection (Linux). It is faster than the threaded floor (no thread hand-offs under the
GIL), so it is the stricter floor for a server that serves on an event loop, such as
``minihttp.eventloop.PooledHTTPServer``; bench_hello.py reports both.

    python3 benchmarks/servers/floor.py --port 8080 [--python-work N] [--epoll]

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


def serve_epoll(srv: socket.socket) -> None:
    """One thread: accept and answer every connection from a level-triggered epoll loop."""
    import select

    srv.setblocking(False)
    ep = select.epoll()
    lfd = srv.fileno()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    bufs: dict[int, bytes] = {}
    while True:
        for fd, _event in ep.poll():
            if fd == lfd:
                try:
                    conn, _ = srv.accept()
                except BlockingIOError:
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[conn.fileno()] = conn
                bufs[conn.fileno()] = b""
                ep.register(conn.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                del conns[fd], bufs[fd]
                conn.close()
                continue
            buf = bufs[fd] + data
            n = buf.count(END)
            if PYTHON_WORK:
                python_work(PYTHON_WORK * n)
            if n:
                buf = buf[buf.rindex(END) + 4:]
                try:
                    conn.sendall(RESPONSE * n)  # blocking socket: a full buffer waits here
                except OSError:
                    pass
            bufs[fd] = buf


def main() -> None:
    """Accept forever on 127.0.0.1:PORT, one daemon thread per connection."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--python-work", type=int, default=0, metavar="N",
                        help="pure-Python additions per request (default 0: the real floor)")
    parser.add_argument("--epoll", action="store_true",
                        help="one thread and an epoll loop instead of a thread per connection")
    args = parser.parse_args()
    global PYTHON_WORK
    PYTHON_WORK = args.python_work
    with socket.create_server(("127.0.0.1", args.port), backlog=128) as srv:
        if args.epoll:
            serve_epoll(srv)
            return
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
