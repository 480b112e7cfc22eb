"""An interrupted download is logged with the body bytes that went out (issue 15 item 3).

The client reads part of a 24 MiB response, then resets the connection. The access line's
size must be at least what the client received and less than the whole file (bytes still in
the kernel's buffers count as sent: the server handed them over). Run on both server kinds,
for the three ways a body leaves: ``sendfile``, 64 KiB reads written (``use_sendfile``
off, as under TLS), and one large ``wfile.write``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minihttp import PooledHTTPServer, ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from tests.helpers.servers import running, wait_for

SIZE = 24 << 20
READ = 2 << 20


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big")
    (path / "big.bin").write_bytes(b"x" * SIZE)
    return path


def handler_for(root: Path, how: str, sizes: list[str]) -> type:
    class Recorded(SimpleHTTPRequestHandler):
        use_sendfile = how == "sendfile"
        directory = str(root)  # the pooled server attaches handlers without __init__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            if how != "write":
                super().do_GET()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(SIZE))
            self.end_headers()
            self.wfile.write(b"x" * SIZE)

        def log_message(self, format: str, *args: Any) -> None:
            if args and str(args[0]).startswith("GET "):
                sizes.append(str(args[2]))

    return Recorded


@pytest.fixture(params=["threaded", "pooled"])
def server_class(request: pytest.FixtureRequest) -> Iterator[type]:
    yield ThreadingHTTPServer if request.param == "threaded" else PooledHTTPServer


@pytest.mark.parametrize("how", ["sendfile", "reads", "write"])
def test_interrupted_download_logs_bytes_sent(root: Path, server_class: type,
                                              how: str) -> None:
    sizes: list[str] = []
    server = server_class(("127.0.0.1", 0), handler_for(root, how, sizes))
    with running(server):
        sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
        try:
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while len(data) < READ:
                piece = sock.recv(65536)
                assert piece, "closed early"
                data += piece
            body = len(data) - (data.index(b"\r\n\r\n") + 4)
            # A reset, not a FIN: the server's next send fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()
        assert wait_for(lambda: sizes, timeout=10), "no access line"
    size = int(sizes[0])
    assert body <= size < SIZE, (body, size)


def test_sendfile_failure_counts_from_file_position(tmp_path: Path) -> None:
    # The writer's rule, without a server: socket.sendfile that fails after some bytes.
    from minihttp._writer import LENGTH, ResponseWriter

    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * 1000)

    class FailingSock:
        def sendall(self, data: Any) -> None:
            pass

        def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
            file.seek(offset + 300)  # where socket.sendfile leaves it after 300 bytes
            raise ConnectionResetError

    writer = ResponseWriter(FailingSock())  # type: ignore[arg-type]
    writer.start(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n", LENGTH, 900)
    with path.open("rb") as f, pytest.raises(ConnectionResetError):
        f.seek(700)  # a position left by earlier reads is not taken for progress
        writer.sendfile(f, 100, 900)
    assert writer.body_bytes == 300 and writer.broken
