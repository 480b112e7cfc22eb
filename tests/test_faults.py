"""Faults: clients that reset, stall or half-close; handlers that raise; running out of fds.

Run against ThreadingHTTPServer and, when it exists, minihttp.eventloop.PooledHTTPServer. After
every fault the server must free the worker (thread count back to where it was, or the only
pool worker serving someone else), log at most one line (INFO and above), and keep serving.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import pytest

from minihttp.config import Limits
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.adversarial import connect, read_responses, serving
from tests.helpers.servers import open_fds, wait_for

LIMITS = Limits(head_timeout=3.0, keepalive_timeout=3.0, body_timeout=3.0, send_timeout=1.0,
                discard_timeout=0.5)
BIG = 32 * 1024 * 1024  # more than any loopback socket buffers can hold
PIECE = b"x" * 65536


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            for _ in range(BIG // len(PIECE)):
                self.wfile.write(PIECE)
        elif self.path == "/raise-before":
            raise RuntimeError("handler failed before the head")
        elif self.path == "/raise-after":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()  # the head is on the wire now
            raise RuntimeError("handler failed after the head")
        else:
            self._reply(b"ok " + self.path.encode())

    def do_POST(self) -> None:
        body = self.rfile.read()
        self._reply(b"got %d" % len(body))


class Threading(ThreadingHTTPServer):
    limits = LIMITS
    daemon_threads = True


def _pooled() -> type | None:
    try:
        mod = importlib.import_module("minihttp.eventloop.server")
    except ImportError:
        return None
    base = getattr(mod, "PooledHTTPServer", None)
    if base is None:
        return None
    return type("Pooled", (base,), {"limits": LIMITS, "max_workers": 1, "shutdown_grace": 1.0,
                                    "daemon_threads": True})


KINDS = ["threading", "pooled"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "pooled" and _pooled() is None:
        pytest.skip("minihttp.eventloop.PooledHTTPServer does not exist yet")
    return str(request.param)


def make_server(kind: str, handler: Any = FaultHandler) -> Any:
    cls = Threading if kind == "threading" else _pooled()
    assert cls is not None
    return cls(("127.0.0.1", 0), handler)


class LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def log_lines() -> Iterator[LogLines]:
    h = LogLines()
    log = logging.getLogger("minihttp")
    old = log.level
    log.setLevel(logging.INFO)
    log.addHandler(h)
    try:
        yield h
    finally:
        log.removeHandler(h)
        log.setLevel(old)


def get(addr: Any, path: str = "/small", timeout: float = 10.0) -> tuple[int, bytes]:
    with connect(addr, timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % path.encode())
        ex = read_responses(s, 1, deadline=timeout)
    assert ex.responses, ex
    return ex.responses[0].status, ex.responses[0].body


def rst_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def live(kind: str) -> Iterator[tuple[Any, Any]]:
    server = make_server(kind)
    with serving(server) as addr:
        assert get(addr) == (200, b"ok /small")  # warm up: pool worker started
        yield server, addr


def thread_allowance(server: Any) -> int:
    """Threads a server may add after warm-up without leaking: a pooled server's workers
    start lazily (one becomes the loop's leader when a handler blocks the loop thread)."""
    return getattr(server, "max_workers", 0)


def settled(base_threads: int, base_fds: int) -> bool:
    return threading.active_count() <= base_threads and open_fds() <= base_fds


# -- resets ------------------------------------------------------------------------------------

RESETS = {
    "mid-head": (b"GET /small HTTP/1.1\r\nHo", 0),
    "mid-body": (b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"b" * 1000, 0),
    "mid-response": (b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n", 4096),
}


@pytest.mark.parametrize("fault", list(RESETS))
def test_client_reset(kind: str, fault: str) -> None:
    data, read_first = RESETS[fault]
    with live(kind) as (server, addr), log_lines() as logs:
        base_threads, base_fds = threading.active_count() + thread_allowance(server), open_fds()
        for _ in range(3):
            sock = connect(addr)
            sock.sendall(data)
            got = 0
            while got < read_first:
                chunk = sock.recv(65536)
                assert chunk
                got += len(chunk)
            if not read_first:
                time.sleep(0.05)  # let the server start reading what was sent
            rst_close(sock)
            assert get(addr) == (200, b"ok /small")
        assert wait_for(lambda: settled(base_threads, base_fds), 10.0), (
            threading.active_count(), base_threads, open_fds(), base_fds)
    assert len(logs.records) <= 3, [r.getMessage() for r in logs.records]  # <= 1 per fault
    assert not [r for r in logs.records if r.exc_info], "no traceback for a client reset"


def test_client_stops_reading_send_timeout_frees_worker(kind: str) -> None:
    """Zero window: the server's send blocks; Limits.send_timeout (1 s here) must free it."""
    with live(kind) as (server, addr), log_lines() as logs:
        base_threads = threading.active_count() + thread_allowance(server)
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(5)
        stalled.connect(addr)
        try:
            stalled.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            sent_at = time.monotonic()
            # Served while the stalled client still holds its connection open: with one pool
            # worker, only a send timeout can free it; with threads, the count comes back.
            assert get(addr, timeout=15.0) == (200, b"ok /small")
            assert wait_for(lambda: threading.active_count() <= base_threads, 15.0)
            # The thread count alone can drop early (a transient thread counted in the base
            # ends), so also let the 1 s send timeout pass before this client reads at all.
            time.sleep(max(0.0, sent_at + 4.0 - time.monotonic()))
            # the server gave up on it: what it could buffer, then EOF or reset, never 32 MiB
            total = 0
            stalled.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while chunk := stalled.recv(1 << 20):
                    total += len(chunk)
            assert total < BIG
        finally:
            stalled.close()
        assert get(addr) == (200, b"ok /small")
    assert len(logs.records) <= 1, [r.getMessage() for r in logs.records]


def test_half_close_still_gets_response(kind: str) -> None:
    """shutdown(SHUT_WR) after a complete request: the response still arrives (RFC 9112 9.6)."""
    with live(kind) as (_server, addr):
        for req in (b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n",
                    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"):
            with connect(addr) as s:
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
                ex = read_responses(s, 1)
            assert [r.status for r in ex.responses] == [200], ex
            assert ex.responses[0].body in (b"ok /half", b"got 3")
            assert ex.closed and ex.extra == b""


# -- handlers that raise -----------------------------------------------------------------------

def test_handler_raises_before_headers_gets_500_and_keeps_connection(kind: str) -> None:
    with live(kind) as (_server, addr), log_lines() as logs, connect(addr) as s:
        s.sendall(b"GET /raise-before HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        ex = read_responses(s, 2, want_close=False)
        assert [r.status for r in ex.responses] == [500, 200], ex
        assert ex.responses[1].body == b"ok /after"
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info, [r.getMessage() for r in logs.records]


def test_handler_raises_after_headers_closes_connection(kind: str) -> None:
    with live(kind) as (_server, addr), log_lines() as logs:
        with connect(addr) as s:
            s.sendall(b"GET /raise-after HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            s.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    data += chunk
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
        conn.receive_data(data)
        conn.receive_data(b"")
        events = []
        with pytest.raises(h11.RemoteProtocolError):  # body cut short: closed, not reused
            while True:
                ev = conn.next_event()
                events.append(ev)
                assert ev is not h11.NEED_DATA
        assert isinstance(events[0], h11.Response) and events[0].status_code == 200
        assert b"/never" not in data and data.count(b"HTTP/1.1 ") == 1
        assert get(addr) == (200, b"ok /small")
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in logs.records]


# -- out of file descriptors ---------------------------------------------------------------------

EMFILE_SERVER = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, {root!r})
    resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
    from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            self.wfile.write(b"ok")
    if {kind!r} == "pooled":
        from minihttp.eventloop import PooledHTTPServer as Base
    else:
        Base = ThreadingHTTPServer
    class S(Base):
        daemon_threads = True
        max_workers = 4
        accept_backoff = 0.05
    s = S(("127.0.0.1", 0), H)
    print(s.server_address[1], flush=True)
    s.serve_forever(poll_interval=0.05)
""")


def test_out_of_file_descriptors_refuses_or_delays_then_recovers(kind: str) -> None:
    limit = 48
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER.format(root=root, limit=limit,
                                                                        kind=kind)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        addr = ("127.0.0.1", port)
        answered = 0
        refused = 0
        for _ in range(limit + 30):  # well past the limit
            try:
                s = socket.create_connection(addr, timeout=1)
            except OSError:
                refused += 1  # backlog full: the SYN is dropped (delayed until timeout)
                if refused >= 3:
                    break
                continue
            socks.append(s)
            with contextlib.suppress(OSError):
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        # One bounded window for all of them; the rest are delayed (backlog) or refused.
        # (Up to 8 s for the first answer on a loaded machine, then until 1 s passes quietly.)
        pending = set(socks)
        end = time.monotonic() + 8.0
        while pending and time.monotonic() < end:
            ready, _, _ = select.select(list(pending), [], [], max(0.0, end - time.monotonic()))
            for s in ready:
                pending.discard(s)
                with contextlib.suppress(OSError):
                    if s.recv(4096).startswith(b"HTTP/1.1 200"):
                        answered += 1
                        end = time.monotonic() + 1.0
        assert answered < limit, "more connections served than the fd limit allows"
        assert answered > 0, "nothing was served below the fd limit"
        for s in socks:
            s.close()
        socks.clear()
        # recovery: once the descriptors are free, new connections are served
        deadline = time.monotonic() + 20
        ok = False
        while time.monotonic() < deadline and not ok:
            with contextlib.suppress(OSError, AssertionError):
                ok = get(addr, timeout=2.0) == (200, b"ok")
        assert ok, "server did not recover after the connections closed"
        assert proc.poll() is None, "server process died"
    finally:
        for s in socks:
            s.close()
        proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]


def test_client_gone_mid_body_logs_no_error(kind: str) -> None:
    """Found by tests/test_fuzz.py: EOF inside a Content-Length body made the server log
    "handler sent no response" at ERROR (the handler's read failed, so it sent nothing)."""
    with live(kind) as (_server, addr), log_lines() as logs:
        with connect(addr) as s:
            s.sendall(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc")
            s.shutdown(socket.SHUT_WR)
            ex = read_responses(s, 1)
        assert ex.responses == [] and ex.closed, ex
        assert get(addr) == (200, b"ok /small")
    assert not [r for r in logs.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in logs.records]
