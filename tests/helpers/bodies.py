"""Reading many HTTP/1.1 responses at once on one thread (slow-reader tests).

Rules of this module: every wait is bounded (``limit`` seconds in all); nothing here sends.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterator


@contextlib.contextmanager
def slow_readers(port: int, url: str, count: int,
                 timeout: float | None = None) -> Iterator[list[socket.socket]]:
    """``count`` clients of the proxy on ``port``, each with a tiny receive buffer (4 KiB,
    so the server soon finds it slow) and a GET for the absolute ``url`` already sent;
    all closed on exit, whatever happened."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.settimeout(timeout)
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        yield socks
    finally:
        for s in socks:
            s.close()


def read_bodies(socks: list[socket.socket], limit: float = 60.0) -> list[bytes]:
    """Every response body, read concurrently by this one thread (one after the other,
    the last would wait for the others), each until its Content-Length, EOF, or ``limit``
    seconds in all.

    One thread, not one per socket: the readers run in the server's own process, and 20 of
    them contending for the GIL with 8 KiB reads (their receive buffers are tiny on
    purpose) starved the server's one loop thread on a loaded machine (the relay of 20
    bodies then took over a minute)."""
    out = [bytearray() for _ in socks]
    want: list[int | None] = [None] * len(socks)
    heads = [bytearray() for _ in socks]
    with selectors.DefaultSelector() as sel:
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        end = time.monotonic() + limit
        while sel.get_map() and time.monotonic() < end:
            for key, _ev in sel.select(0.5):
                i = key.data
                try:
                    piece = socks[i].recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    piece = b""
                if want[i] is None:
                    heads[i] += piece
                    if b"\r\n\r\n" in heads[i]:
                        head, _, body = bytes(heads[i]).partition(b"\r\n\r\n")
                        want[i] = int(head.lower().split(b"content-length: ")[1]
                                      .split(b"\r\n")[0])
                        out[i] += body
                else:
                    out[i] += piece
                length = want[i]
                if not piece or (length is not None and len(out[i]) >= length):
                    sel.unregister(socks[i])
    return [bytes(b) for b in out]
