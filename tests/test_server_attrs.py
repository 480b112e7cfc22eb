"""Handlers keep their attributes compact: the rules of BaseHTTPRequestHandler's docstring.

On CPython 3.11 an instance whose attribute names do not all fit its class's shared keys
(at most 30, fewer for every instance made before a name is first set) gets a real dict,
and every attribute read and method lookup on it gets slower (measured: 5% of a hello
request's instructions). These tests serve each kind of handler on
:class:`~minihttp.eventloop.PooledHTTPServer` with several connections open *before* any
request (so names first set by a request meet a table already shrunk by those instances),
and look at every handler when its connection ends:

* its attribute names are among those its class reserves (``_instance_names`` and the
  ``_late_names`` that fit), hence at most ``INSTANCE_NAMES_MAX``;
* it has no materialised dict. Detected without touching ``__dict__`` (reading it would
  create the dict): while the values are compact the garbage collector visits each value
  (``gc.get_referents`` lists them), once there is a dict it visits that dict, which is
  the one referent holding the key ``client_address``. CPython only (skipped elsewhere).

Servers bind 127.0.0.1 port 0; every socket has a timeout and every loop a bound.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from minihttp import server as server_module
from minihttp.eventloop import PooledHTTPServer
from minihttp.server import INSTANCE_NAMES_MAX, BaseHTTPRequestHandler
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.wsgi import WSGIRequestHandler, make_handler
from tests.helpers.logstate import access_messages
from tests.helpers.servers import running, wait_for

TIMEOUT = 5.0
#: Connections opened before the first request: each one's handler exists by then.
CONNECTIONS = 8
CPYTHON = sys.implementation.name == "cpython"


def has_dict(obj: Any) -> bool:
    """Whether ``obj``'s attributes live in a real dict (see the module docstring)."""
    return any(type(ref) is dict and "client_address" in ref for ref in gc.get_referents(obj))


def recording(cls: type[BaseHTTPRequestHandler], seen: list[tuple[bool, list[str]]],
              made: list[object]) -> type[BaseHTTPRequestHandler]:
    """A subclass of ``cls`` noting each handler made (``setup``) and, when its connection
    ends (``finish``), whether it had a dict and its attribute names."""

    class Recording(cls):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            super().setup()
            made.append(self)

        def finish(self) -> None:
            materialised = has_dict(self)  # before vars(): that would make the dict
            seen.append((materialised, sorted(vars(self))))
            super().finish()

    return Recording


def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """One Content-Length response from ``sock`` (bounded by the socket's timeout)."""
    for _ in range(1000):
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value)
            if len(buf) >= end + 4 + length:
                response = bytes(buf[: end + 4 + length])
                del buf[: end + 4 + length]
                return response
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    raise AssertionError(f"no whole response: {bytes(buf)[:200]!r}")


def serve_concurrently(handler: Any, requests: Iterable[bytes],
                       **server_attrs: Any) -> list[tuple[bool, list[str]]]:
    """Open CONNECTIONS connections, wait until each has its handler, then send
    ``requests`` on each (keep-alive, answered 200); (dict?, names) of every handler."""
    seen: list[tuple[bool, list[str]]] = []
    made: list[object] = []
    cls = recording(handler, seen, made)
    server = PooledHTTPServer(("127.0.0.1", 0), cls)
    for name, value in server_attrs.items():
        setattr(server, name, value)
    requests = list(requests)
    with running(server):
        port = server.server_address[1]
        socks = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                 for _ in range(CONNECTIONS)]
        try:
            assert wait_for(lambda: len(made) == CONNECTIONS, TIMEOUT), len(made)
            for sock in socks:
                buf = bytearray()
                for request in requests:
                    sock.sendall(request)
                    assert read_response(sock, buf).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in socks:
                sock.close()
        assert wait_for(lambda: len(seen) == CONNECTIONS, TIMEOUT), len(seen)
    return seen


def check(cls: type, seen: list[tuple[bool, list[str]]]) -> None:
    reserved = set(server_module._reserved_names(cls))
    assert len(reserved) <= INSTANCE_NAMES_MAX
    for materialised, names in seen:
        assert set(names) <= reserved, f"not reserved: {sorted(set(names) - reserved)}"
        assert len(names) <= INSTANCE_NAMES_MAX
        if CPYTHON:
            assert not materialised, f"a real dict, with {len(names)} names: {names}"


GET = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
POST = b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"


class Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.rfile.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body) + 2))
        self.end_headers()
        self.wfile.write(b"hi" + body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_plain_handler_stays_compact() -> None:
    check(Plain, serve_concurrently(Plain, [GET, POST, GET]))


class Logged(Plain):
    """Plain with the default access log (``_log_code`` is set by every request)."""

    log_message = BaseHTTPRequestHandler.log_message


def test_a_handler_with_the_access_log_stays_compact() -> None:
    with access_messages() as lines:
        seen = serve_concurrently(Logged, [GET, POST])
    assert len(lines) == 2 * CONNECTIONS
    check(Logged, seen)


def test_a_handler_behind_a_trusted_proxy_stays_compact() -> None:
    """minihttp.forwarded keeps the direct peer in ``peer_address`` without reading the
    handler's ``__dict__`` (which alone would make the dict)."""
    forwarded = GET.replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n")
    seen = serve_concurrently(Plain, [forwarded, forwarded],
                              forwarded_allow_ips="127.0.0.1")
    assert all("peer_address" in names for _, names in seen)
    check(Plain, seen)


def test_a_static_handler_stays_compact(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"static\n" * 100)

    class Static(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        directory = str(tmp_path)  # attach() runs no __init__: the class carries it

        def log_message(self, format: str, *args: Any) -> None:
            pass

    # The third GET repeats the head: answered by minihttp.static.hit (its _repeat).
    check(Static, serve_concurrently(Static, [GET, GET, GET]))


def test_a_wsgi_handler_stays_compact() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body) + 2))])
        return [b"hi" + body]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    cls = make_handler(app, base=Quiet)
    seen = serve_concurrently(cls, [GET, POST, GET])
    # make_handler's class is subclassed by recording(): the names are those of cls's MRO.
    check(cls, seen)


def test_a_wsgi_handler_with_the_access_log_stays_compact() -> None:
    """As ``python -m minihttp wsgi -q`` serves: the default access log (silenced by
    level), so ``_log_code`` is set by every request; GETs only: a request body's
    ``_expect_pending`` no longer fits (see the report in the commit)."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"hi"]

    cls = make_handler(app)
    with access_messages() as lines:
        seen = serve_concurrently(cls, [GET, GET])
    assert len(lines) == 2 * CONNECTIONS
    check(cls, seen)


@pytest.mark.parametrize("cls", [BaseHTTPRequestHandler, SimpleHTTPRequestHandler,
                                 WSGIRequestHandler])
def test_the_reserved_names_fit(cls: type) -> None:
    names = server_module._reserved_names(cls)
    assert len(names) == len(set(names)) <= INSTANCE_NAMES_MAX
    assert set(server_module._instance_names(cls)) <= set(names)


def test_a_subclass_property_is_not_set_by_the_reservation() -> None:
    """A user subclass may define one of the reserved names as a property: the first
    instance's reservation must not call its setter (nor fail)."""
    calls: list[object] = []

    class WithProperty(Plain):
        @property
        def path(self) -> str:
            return "/fixed"

        @path.setter
        def path(self, value: str) -> None:
            calls.append(value)

    handler = WithProperty.__new__(WithProperty)
    handler._init_state()
    assert calls == []
    assert handler.path == "/fixed"
