"""Servers in background threads for tests, and small socket helpers; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def running(server: Any, *, join_timeout: float = 10.0) -> Iterator[Any]:
    """Serve ``server`` in a background thread; shut it down and close it on exit.

    Fails the test if the serving thread does not end within ``join_timeout`` seconds.
    """
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="test-serve-forever", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(join_timeout)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"


def recv_line(c: socket.socket, timeout: float = 10.0) -> bytes:
    """Bytes from ``c`` up to and including a LF, or what came before EOF or ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def open_fds() -> int:
    """Number of file descriptors open in this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def wait_for(cond: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``cond`` until it is true or ``timeout`` seconds pass; its last truth value."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return bool(cond())
        time.sleep(interval)
