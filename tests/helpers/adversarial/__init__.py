"""Shared pieces of the adversarial suite: live servers, a raw-socket client, response parsing.

The vectors themselves are in :mod:`adversarial.vectors`. Everything here talks to servers on
127.0.0.1 only, with short, bounded timeouts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

from minihttp.config import Limits
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler

#: Small limits so the "too long / too many" vectors stay small.
LIMITS = Limits(max_request_line=1024, max_head=4096, max_header_count=20, max_body=1000,
                max_chunk_line=64, max_trailer=512, max_discard=4096, head_timeout=3.0,
                keepalive_timeout=3.0, body_timeout=3.0, discard_timeout=1.0, send_timeout=3.0)

PROBE = b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with JSON: method, target, version, headers, body (latin-1)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _echo(self, read_body: bool = True) -> None:
        body = self.rfile.read() if read_body else b""
        out = json.dumps({
            "method": self.command, "target": self.path, "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("latin-1"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def do_GET(self) -> None:  # leaves any body unread: the server must drain it
        self._echo(read_body=False)

    def do_HEAD(self) -> None:
        self._echo(read_body=False)

    def do_POST(self) -> None:
        self._echo()

    do_PUT = do_POST
    do_OPTIONS = do_GET


class QuietStatic(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    limits = LIMITS
    daemon_threads = True


def make_static_tree(root: Path) -> Path:
    """A served directory plus a secret file next to it (outside the served root)."""
    (root / "secret.txt").write_bytes(b"SECRET\n")
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (www / "a.txt").write_bytes(b"hello\n")
    (www / "sub" / "b.txt").write_bytes(b"bee\n")
    (www / ".hidden").write_bytes(b"dot\n")
    (www / "caf\u00e9.txt").write_bytes(b"cafe\n")  # requested as /caf%C3%A9.txt
    with contextlib.suppress(OSError):
        (www / "escape").symlink_to(root / "secret.txt")
    return www


def static_server(directory: Path) -> Server:
    return Server(("127.0.0.1", 0), functools.partial(QuietStatic, directory=str(directory)))


class ErrorCapture(logging.Handler):
    """Collects ERROR records of ``minihttp`` loggers (a traceback would be one of them)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def capture_errors() -> Iterator[ErrorCapture]:
    cap = ErrorCapture()
    log = logging.getLogger("minihttp")
    log.addHandler(cap)
    try:
        yield cap
    finally:
        log.removeHandler(cap)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    responses: list[Response] = field(default_factory=list)
    closed: bool = False  # the server closed (EOF or reset) after the responses
    extra: bytes = b""  # bytes that were not part of any well-formed response
    error: str = ""  # why parsing stopped (h11 error, timeout)


def connect(addr: tuple[str, int], timeout: float = 3.0) -> socket.socket:
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_parts(sock: socket.socket, parts: list[bytes]) -> None:
    for part in parts:
        if part:
            try:
                sock.sendall(part)
            except OSError:
                return  # the server already closed: what it answered is still readable


def read_responses(sock: socket.socket, count: int, *, head_method: bool = False,
                   deadline: float = 3.0, want_close: bool = True) -> Exchange:
    """Read up to ``count`` responses with h11 as a strict client-side parser.

    Afterwards, if ``want_close``, wait (bounded) for EOF and record any further bytes.
    """
    ex = Exchange()
    end = time.monotonic() + deadline
    pending = b""
    eof = False

    def recv() -> bytes:
        nonlocal eof
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            eof = True
        return data

    try:
        while len(ex.responses) < count:
            conn = h11.Connection(h11.CLIENT)
            conn.send(h11.Request(method="HEAD" if head_method else "GET", target="/",
                                  headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
            started = bool(pending)  # any byte of this response seen yet
            if pending:
                conn.receive_data(pending)  # b"" would mean EOF to h11
            pending = b""
            status = 0
            hdrs: dict[str, str] = {}
            body = bytearray()
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    if eof and not started:
                        ex.closed = True  # closed cleanly between responses
                        return ex
                    if eof:
                        conn.receive_data(b"")
                        continue
                    data = recv()
                    if not data and not started:
                        ex.closed = True
                        return ex
                    started = started or bool(data)
                    conn.receive_data(data)  # b"" is EOF (recv set eof)
                    continue
                if isinstance(ev, h11.InformationalResponse):
                    continue
                if isinstance(ev, h11.Response):
                    status = ev.status_code
                    hdrs = {k.decode().lower(): v.decode("latin-1") for k, v in ev.headers}
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    ex.responses.append(Response(status, hdrs, bytes(body)))
                    data, _closed = conn.trailing_data
                    pending = data
                    break
                elif isinstance(ev, h11.ConnectionClosed):
                    ex.closed = True
                    return ex
            if conn.their_state is h11.MUST_CLOSE or hdrs.get("connection", "") == "close":
                break
        if want_close:
            buf = pending
            while not eof:
                buf += recv()
            ex.extra = buf
            ex.closed = True
        else:
            ex.extra = pending
    except h11.RemoteProtocolError as err:
        ex.error = f"h11: {err}"
    except TimeoutError:
        ex.error = "timeout"
    except OSError as err:
        ex.error = f"oserror: {err!r}"
    return ex


def replay(addr: tuple[str, int], parts: list[bytes], statuses: list[int], closes: bool,
           *, head_method: bool = False) -> Exchange:
    """Send ``parts`` as separate writes and read the expected number of responses.

    For a vector that must keep the connection open, a probe request is sent afterwards and
    its answer (an echo of /probe, or any answer from a static server) is appended.
    """
    with connect(addr) as sock:
        send_parts(sock, parts)
        if closes:
            return read_responses(sock, len(statuses), head_method=head_method)
        ex = read_responses(sock, len(statuses), head_method=head_method, want_close=False)
        if ex.error or ex.closed or len(ex.responses) != len(statuses):
            return ex
        sock.sendall(PROBE)
        probe = read_responses(sock, 1, want_close=False)
        ex.responses += probe.responses
        ex.error = probe.error
        ex.closed = probe.closed
        return ex


@contextlib.contextmanager
def serving(server: Any) -> Iterator[tuple[str, int]]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
