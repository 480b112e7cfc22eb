"""Fixtures of the WSGI gateway tests: the gateway on each server kind, a strict client.

Every test application is wrapped in ``wsgiref.validate.validator`` (it checks both sides
of PEP 3333: what the application does and what the gateway gives it) unless a test says
why not (an application that breaks the rules on purpose).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from wsgiref.validate import validator

import h11
import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import ThreadingHTTPServer
from minihttp.wsgi import WSGIRequestHandler, make_handler
from tests.helpers.servers import running

KINDS = {"pooled": PooledHTTPServer, "threading": ThreadingHTTPServer}


@pytest.fixture(params=sorted(KINDS))
def kind(request: Any) -> str:
    """Run the test on PooledHTTPServer (the default) and on ThreadingHTTPServer."""
    return str(request.param)


@pytest.fixture
def serve_app(kind: str) -> Callable[..., Any]:
    """``with serve_app(app, validate=True, root_path="", handler=..., **server_attrs) as
    port:`` serves ``app`` on 127.0.0.1 on the parametrized server kind."""

    @contextlib.contextmanager
    def serve(app: Any, *, validate: bool = True, root_path: str = "",
              handler: type[WSGIRequestHandler] = WSGIRequestHandler,
              **server_attrs: Any) -> Iterator[int]:
        wrapped = validator(app) if validate else app
        cls = type("TestServer", (KINDS[kind],), server_attrs)
        server = cls(("127.0.0.1", 0), make_handler(wrapped, root_path=root_path,
                                                     base=handler))
        with running(server):
            yield int(server.server_address[1])

    return serve


class StrictClient:
    """One keep-alive connection, every response read by h11 (a strict HTTP/1.1 client)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)

    def request(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                body: bytes = b"") -> tuple[Any, bytes]:
        """Send a request; ``(h11.Response, body)``."""
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        fields = [("Host", "test"), *(headers or [])]
        if body:
            fields.append(("Content-Length", str(len(body))))
        self.sock.sendall(self.conn.send(h11.Request(method=method, target=target,
                                                     headers=fields)))
        if body:
            self.sock.sendall(self.conn.send(h11.Data(data=body)))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))
        return self.read()

    def read(self) -> tuple[Any, bytes]:
        head = None
        data = bytearray()
        for _ in range(100_000):
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        assert head is not None, "no response"
        return head, bytes(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> StrictClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def header(response: Any, name: str) -> str | None:
    """The value of ``name`` in an h11 response (None when absent)."""
    want = name.lower().encode()
    for key, value in response.headers:
        if key == want:
            return str(value.decode("latin-1"))
    return None


def read_until_close(sock: socket.socket, limit: int = 10_000) -> bytes:
    """Everything the peer sends until it closes; fails if it does not close in time."""
    parts = []
    for _ in range(limit):
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"the server did not close; got {b''.join(parts)[:200]!r}"
                                 ) from None
        if not piece:
            return b"".join(parts)
        parts.append(piece)
    raise AssertionError("too many reads")


class Spy:
    """A socket stand-in for the writer: records ``(call, bytes)`` and passes through."""

    def __init__(self, sock: Any, calls: list[tuple[str, int]]) -> None:
        self.sock = sock
        self.calls = calls

    def sendall(self, data: Any) -> None:
        self.calls.append(("sendall", len(data)))  # before the send: the client may see
        # the response before this thread runs again
        self.sock.sendall(data)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.calls.append(("sendfile", -1 if count is None else count))  # before: no race
        sent: int = self.sock.sendfile(file, offset, count)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class Spied(WSGIRequestHandler):
    calls: ClassVar[list[tuple[str, int]]] = []

    def setup(self) -> None:
        super().setup()
        self.wfile.sock = Spy(self.wfile.sock, self.calls)
