"""Shared test fixtures (the helpers they use live in tests/helpers/)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.servers import running


@pytest.fixture
def serve() -> Any:
    """``with serve(server) as s:`` runs the server in a thread for the block."""
    return running


@pytest.fixture(params=["threads", "pooled"])
def proxy_kind(request: Any) -> Iterator[str]:
    """Run a proxy end-to-end test on each proxy server (see test_proxy_helpers.proxy)."""
    from tests.helpers.proxy import proxy_kind as use

    with use(request.param):
        yield request.param


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair ``(ours, peer)``; the peer's reads time out after 5 s."""
    a, b = socket.socketpair()
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()
