"""The file server as the command line builds it, in this process, for end-to-end tests of
its options (``cli.make_server`` on 127.0.0.1 port 0, served in a background thread)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from minihttp import cli
from tests.helpers.servers import running

TIMEOUT = 5.0


@contextlib.contextmanager
def file_server(root: Path, *options: str) -> Iterator[str]:
    """Serve ``root`` with the command-line ``options``; yields the base URL (no slash)."""
    args = cli.build_parser().parse_args(["0", "-b", "127.0.0.1", "-q", "-d", str(root),
                                          *options])
    server = cli.make_server(args)
    with running(server):
        yield f"http://127.0.0.1:{server.server_address[1]}"


def raw_exchange(base_url: str, request: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send one raw request (it should say ``Connection: close``); status, fields, body."""
    port = int(base_url.rsplit(":", 1)[1])
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + TIMEOUT
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk or time.monotonic() > deadline:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.append((name.strip().lower(), value.strip()))
    return int(lines[0].split()[1]), fields, body
