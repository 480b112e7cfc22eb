"""The response writer's contract with the rest of the package (minihttp/_writer.py).

* Nobody outside ``_writer.py`` touches an underscored name of :class:`ResponseWriter`, nor
  sets its state fields (``broken`` is the one field the handler may set): scanned with
  :mod:`ast`, so that the handler cannot go back to inlining the writer's work.
* How a response ends is decided once, by :meth:`ResponseWriter.end`: its table of rules
  replayed row by row (ending, bytes sent, state afterwards), and ``finish()`` agreeing with
  it; a failed send still reports the ending (the handler's bug is still logged).
* A handler that overrides ``flush_headers`` still gets every head through it (the handler
  decides once per connection whether it may hand heads to the writer directly).
"""

from __future__ import annotations

import ast
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from minihttp import _writer
from minihttp._writer import (
    CHUNKED,
    CLOSE,
    END_CLOSE,
    END_KEEP,
    END_NO_RESPONSE,
    END_SHORT,
    LENGTH,
    NOBODY,
    PASSTHROUGH,
    ResponseNotSent,
    ResponseTooLong,
    ResponseWriter,
)
from minihttp.config import DEFAULT_LIMITS
from minihttp.server import BaseHTTPRequestHandler

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minihttp"
WRITER_MODULE = PACKAGE / "_writer.py"
HEAD = b"HTTP/1.1 200 OK\r\n\r\n"

# --------------------------------------------------------------------------- the ast scan


def _private_names() -> set[str]:
    """Underscored, non-dunder names of ResponseWriter: its slots and its methods."""
    names = {n for n in ResponseWriter.__slots__ if n.startswith("_")}
    names |= {n for n in vars(ResponseWriter) if n.startswith("_") and not n.startswith("__")}
    return names


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def private_accesses(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, text) of every ``x._name`` (x not ``self``/``cls``) and every
    ``getattr``/``setattr``/``hasattr``/``delattr`` of a ``"_name"`` string, for ``names``.

    ``self._buf`` in another class is that class's own field; any other object's ``._buf`` is
    taken for the writer's (a false alarm is cheap: rename the field).
    """
    return [(node.lineno, ast.unparse(node)) for node in ast.walk(ast.parse(source))
            if _touches(node, names)]


def _touches(node: ast.AST, names: set[str]) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in names and not _is_self(node.value)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in names)


#: Writer fields only the writer sets (``broken`` is set by the handler on failures).
STATE_FIELDS = {n for n in ResponseWriter.__slots__ if not n.startswith("_")} - {"broken"}


def _names_a_writer(node: ast.expr) -> bool:
    """``writer``, ``….writer``, ``…._writer``, ``….wfile``: how the package names its writers."""
    if isinstance(node, ast.Name):
        return node.id in ("writer", "wfile")
    return isinstance(node, ast.Attribute) and node.attr in ("writer", "_writer", "wfile")


def state_writes(source: str) -> list[tuple[int, str]]:
    """(line, text) of every assignment to a writer's state field (see STATE_FIELDS)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if (isinstance(sub, ast.Attribute) and sub.attr in STATE_FIELDS
                            and _names_a_writer(sub.value)):
                        found.append((node.lineno, ast.unparse(sub)))
    return found


def _scanned_files() -> Iterator[Path]:
    for top in ("minihttp", "examples", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path != WRITER_MODULE:
                yield path


def test_private_names_cover_the_buffer() -> None:
    """The scan looks for the names that matter (else it would pass by looking for nothing)."""
    assert {"_buf", "_send", "_reset"} <= _private_names()
    assert {"mode", "remaining", "started", "committed", "body_bytes"} <= STATE_FIELDS


def test_scanner_finds_what_it_is_for() -> None:
    """The scanner itself, on the forms the handler used to write."""
    names = _private_names()
    src = ("writer._buf += head\n"
           "buf = self._writer._buf\n"
           "getattr(w, '_buf')\n"
           "self._buf = bytearray()\n")  # the last is some class's own field: allowed
    assert [line for line, _ in private_accesses(src, names)] == [1, 2, 3]
    src = ("writer.mode = LENGTH\n"
           "self._writer.remaining = 3\n"
           "writer.started = writer.committed = False\n"
           "self.wfile.body_bytes += 1\n"
           "writer.broken = True\n"  # allowed
           "self.remaining = 0\n")  # some class's own field: allowed
    assert [line for line, _ in state_writes(src)] == [1, 2, 3, 3, 4]


def test_no_private_writer_access_outside_writer_module() -> None:
    names = _private_names()
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}"
                 for path in _scanned_files()
                 for line, text in private_accesses(path.read_text(encoding="utf-8"), names)]
    assert offenders == [], "use a ResponseWriter method instead:\n" + "\n".join(offenders)


def test_no_writer_state_written_outside_writer_module() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}"
                 for path in sorted(PACKAGE.rglob("*.py")) if path != WRITER_MODULE
                 for line, text in state_writes(path.read_text(encoding="utf-8"))]
    assert offenders == [], "use a ResponseWriter method instead:\n" + "\n".join(offenders)


# --------------------------------------------------------------------------- how a response ends


class FakeSock:
    """Keeps what is sent; ``fail`` makes every send raise it."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.sent = bytearray()
        self.fail = fail

    def sendall(self, data: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent += data

    def send(self, data: Any) -> int:
        self.sendall(data)
        return len(data)

    def fileno(self) -> int:
        return -1


def _writer_for(sock: FakeSock) -> ResponseWriter:
    return ResponseWriter(sock)  # type: ignore[arg-type]


def _too_long(w: ResponseWriter) -> None:
    w.start(HEAD, LENGTH, 2)
    w.write(b"o")
    with pytest.raises(ResponseTooLong):
        w.write(b"kk")


def _chunked_broken(w: ResponseWriter) -> None:
    w.start(HEAD, CHUNKED)
    w.write(b"hi")
    w.broken = True  # what the handler does when the client left or the handler failed


def _raw_flushed(w: ResponseWriter) -> None:
    w.write(b"raw bytes")
    w.flush()


#: The rows of ResponseWriter.end's table: (name, what the handler did, ending, bytes sent by
#: end() itself).
ROWS: list[tuple[str, Callable[[ResponseWriter], object], int, bytes]] = [
    ("broken (too long)", _too_long, END_CLOSE, HEAD + b"o"),
    ("broken chunked: no last chunk", _chunked_broken, END_CLOSE, HEAD + b"2\r\nhi\r\n"),
    ("length complete", lambda w: (w.start(HEAD, LENGTH, 2), w.write(b"ok")), END_KEEP,
     HEAD + b"ok"),
    ("length empty", lambda w: w.start(HEAD, LENGTH, 0), END_KEEP, HEAD),
    ("length short", lambda w: (w.start(HEAD, LENGTH, 5), w.write(b"ok")), END_SHORT,
     HEAD + b"ok"),
    ("chunked", lambda w: (w.start(HEAD, CHUNKED), w.write(b"hi")), END_KEEP,
     HEAD + b"2\r\nhi\r\n0\r\n\r\n"),
    ("nobody", lambda w: (w.start(HEAD, NOBODY), w.write(b"dropped")), END_KEEP, HEAD),
    ("passthrough", lambda w: (w.start(HEAD, PASSTHROUGH), w.write(b"2\r\nhi\r\n0\r\n\r\n")),
     END_KEEP, HEAD + b"2\r\nhi\r\n0\r\n\r\n"),
    ("close", lambda w: (w.start(HEAD, CLOSE), w.write(b"until close")), END_CLOSE,
     HEAD + b"until close"),
    ("raw, sent before (flush)", _raw_flushed, END_CLOSE, b""),
    # A 1xx is not the final response (RFC 9110 section 15.2): after it alone, nothing of the
    # response was sent, so a failing handler can still be answered 500.
    ("raw, only an interim 100 sent", lambda w: w.interim(b"HTTP/1.1 100 Continue\r\n\r\n"),
     END_NO_RESPONSE, b""),
    ("raw, nothing at all", lambda w: None, END_NO_RESPONSE, b""),
    ("raw, buffered but nothing sent before", lambda w: w.write(b"raw"), END_NO_RESPONSE,
     b"raw"),
]


@pytest.mark.parametrize(("did", "ending", "sent"), [r[1:] for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_end_follows_its_table(did: Callable[[ResponseWriter], object], ending: int,
                               sent: bytes) -> None:
    sock = FakeSock()
    w = _writer_for(sock)
    did(w)
    before = len(sock.sent)
    assert w.end() == ending
    assert bytes(sock.sent[before:]) == sent
    # Ready for the next response whatever happened to this one.
    assert not w.started and not w.broken and w.body_bytes == 0
    w.start(HEAD, LENGTH, 2)
    w.write(b"ok")
    assert w.end() == END_KEEP
    assert bytes(sock.sent).endswith(HEAD + b"ok")


@pytest.mark.parametrize(("did", "ending"), [(r[1], r[2]) for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_finish_is_end_keep(did: Callable[[ResponseWriter], object], ending: int) -> None:
    w = _writer_for(FakeSock())
    did(w)
    assert w.finish() is (ending == END_KEEP)


def test_failed_send_still_reports_the_ending_and_resets() -> None:
    sock = FakeSock(fail=BrokenPipeError(32, "Broken pipe"))
    w = _writer_for(sock)
    w.start(HEAD, LENGTH, 5)
    w.write(b"ok")
    with pytest.raises(ResponseNotSent) as info:
        w.end()
    assert info.value.ending == END_SHORT
    assert isinstance(info.value.__cause__, BrokenPipeError)
    assert isinstance(info.value, OSError)  # finish()'s callers catch OSError, as before
    sock.fail = None
    assert not w.started and w.discard_unsent()  # nothing left over from the failed one
    w.start(HEAD, LENGTH, 2)
    w.write(b"ok")
    assert w.end() == END_KEEP
    assert bytes(sock.sent) == HEAD + b"ok"


def test_endings_are_distinct_and_only_keep_is_false() -> None:
    endings = [END_KEEP, END_CLOSE, END_SHORT, END_NO_RESPONSE]
    assert len(set(endings)) == 4
    assert [bool(e) for e in endings] == [False, True, True, True]  # the handler's `if ending`
    assert {"END_KEEP", "END_CLOSE", "END_SHORT", "END_NO_RESPONSE",
            "ResponseNotSent"} <= set(_writer.__all__)


# --------------------------------------------------------------------------- through the handler


class _Server:
    limits = DEFAULT_LIMITS


class ShortHandler(BaseHTTPRequestHandler):
    """Declares 10 body bytes and writes 5 (a handler bug)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"12345")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_short_response_is_logged_when_the_client_is_also_gone(caplog: Any) -> None:
    """The send fails (the client left) and the response was short: the bug is still told."""
    caplog.set_level(logging.DEBUG, logger="minihttp.error")
    a, b = socket.socketpair()
    try:
        a.settimeout(5.0)
        handler = ShortHandler.attach(a, ("127.0.0.1", 1), _Server())
        b.sendall(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n")
        b.close()  # the request stays readable; sending the response fails (EPIPE)
        handler.handle_one_request()
        assert handler.close_connection
        handler.finish()
    finally:
        a.close()
        b.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not send the response" in m for m in messages), messages
    assert any("shorter than its Content-Length" in m for m in messages), messages


class FlushRecorder(BaseHTTPRequestHandler):
    """Overrides flush_headers (as http.server allows) and records what went through it."""

    protocol_version = "HTTP/1.1"
    heads: list[bytes] = []

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/length":  # end_headers' fast path: keep-alive GET + Content-Length
            self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def flush_headers(self) -> None:
        self.heads.append(b"".join(self._headers_buffer))
        super().flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _recv_response(sock: socket.socket, ending: bytes) -> bytes:
    data = b""
    for _ in range(100):  # bounded: each recv waits at most the socket's timeout
        if data.endswith(ending):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(("path", "ending"), [("/length", b"\r\n\r\nok"),
                                              ("/chunked", b"0\r\n\r\n")])
def test_overridden_flush_headers_sees_every_head(path: str, ending: bytes) -> None:
    FlushRecorder.heads = []
    a, b = socket.socketpair()
    try:
        a.settimeout(5.0)
        b.settimeout(5.0)
        handler = FlushRecorder.attach(a, ("127.0.0.1", 1), _Server())
        b.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        handler.handle_one_request()
        data = _recv_response(b, ending)
        handler.finish()
    finally:
        a.close()
        b.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(ending)
    assert len(FlushRecorder.heads) == 1
    assert FlushRecorder.heads[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.startswith(FlushRecorder.heads[0])


# --------------------------------------------------------------------------- per-connection choices


class Plain(BaseHTTPRequestHandler):
    """Keeps every default that send_response's fast path inlines."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Named(Plain):
    """Overrides version_string: send_response must take the general path for it."""

    def version_string(self) -> str:
        return "Named/1"


def _server_fields(cls: type[BaseHTTPRequestHandler], count: int) -> list[bytes]:
    """The Server field of ``count`` keep-alive responses on one connection to ``cls``."""
    a, b = socket.socketpair()
    fields = []
    try:
        a.settimeout(5.0)
        b.settimeout(5.0)
        handler = cls.attach(a, ("127.0.0.1", 1), _Server())
        for _ in range(count):
            b.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            handler.handle_one_request()
            assert not handler.close_connection
            head = _recv_response(b, b"\r\n\r\nok").partition(b"\r\n\r\n")[0]
            fields += [line for line in head.split(b"\r\n") if line.startswith(b"Server:")]
        handler.finish()
    finally:
        a.close()
        b.close()
    return fields


def test_fast_send_response_is_chosen_per_class() -> None:
    """send_response's fast/general choice, remembered per connection, is the class's own:
    a subclass that overrides version_string is not served by its parent's choice."""
    plain = _server_fields(Plain, 2)
    assert len(plain) == 2 and plain[0] == plain[1] and plain[0].startswith(b"Server: BaseHTTP/")
    assert _server_fields(Named, 2) == [b"Server: Named/1"] * 2
