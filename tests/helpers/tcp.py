"""Raw TCP servers for tests: a thread per connection on 127.0.0.1 port 0, bounded waits."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def tcp_server(handler: Callable[[socket.socket], None], host: str = "127.0.0.1") -> Iterator[int]:
    """Run ``handler(conn)`` for each connection (closed after it); yields the port.

    ``host``: a loopback address to listen on (``::1`` for IPv6).

    Connections have a 5 s timeout; on exit the listener closes and every handler thread
    must end within 5 s.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.create_server((host, 0), family=family)
    srv.settimeout(0.1)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            c.settimeout(5)
            conns.append(c)

            def run(c: socket.socket = c) -> None:
                with c, contextlib.suppress(OSError):
                    handler(c)

            t = threading.Thread(target=run, daemon=True)
            threads.append(t)
            t.start()

    main = threading.Thread(target=serve, daemon=True)
    main.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        main.join(5)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        srv.close()
        assert not any(t.is_alive() for t in threads), "tcp_server handler hung"


def echo(conn: socket.socket) -> None:
    """Send back every byte until the peer half-closes."""
    while data := conn.recv(65536):
        conn.sendall(data)
