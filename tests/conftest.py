"""Shared test fixtures: run any stdlib-compatible server in a thread, bounded in time."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest


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


def open_fds() -> int:
    """Number of file descriptors open in this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def serve() -> Any:
    """``with serve(server) as s:`` runs the server in a thread for the block."""
    return running
