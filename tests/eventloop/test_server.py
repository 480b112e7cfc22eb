"""PooledHTTPServer: idle and slow connections hold no thread; deadlines, cap, shutdown, TLS."""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minihttp.config import Limits
from minihttp.eventloop import PooledHTTPServer, default_max_connections
from minihttp.server import BaseHTTPRequestHandler
from minihttp.static import SimpleHTTPRequestHandler
from tests.helpers.servers import open_fds, running, wait_for

REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


#: Set by the handler when a /sleep=... request starts (the request is in flight).
SLEEPING = threading.Event()


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/boom":
            raise RuntimeError("handler failure (expected by the test)")
        if self.path.startswith("/sleep"):
            SLEEPING.set()
            time.sleep(float(self.path.split("=")[1]))
        if self.path == "/stream":
            self.send_response(200)
            self.end_headers()  # no Content-Length: chunked on HTTP/1.1
            for i in range(3):
                self.wfile.write(b"part%d;" % i)
                self.wfile.flush()
            return
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[::-1])

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make(limits: Limits | None = None, **attrs: Any) -> PooledHTTPServer:
    attrs.setdefault("max_workers", 4)
    if limits is not None:
        attrs["limits"] = limits
    cls = type("TestPooled", (PooledHTTPServer,), attrs)
    server: PooledHTTPServer = cls(("127.0.0.1", 0), attrs.pop("handler", Hello))
    return server


def connect(server: PooledHTTPServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(server.server_address[:2], timeout=timeout)


_leftover: dict[int, bytes] = {}


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length (or until EOF), bounded by the socket timeout.

    Bytes read past it (the next pipelined response) are kept for the next call.
    """
    data = _leftover.pop(id(sock), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while length is not None and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    if length is not None and len(body) > length:
        _leftover[id(sock)] = body[length:]
        body = body[:length]
    return head + b"\r\n\r\n" + body


def get(server: PooledHTTPServer, path: str = "/") -> bytes:
    with connect(server) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return read_response(s)


@pytest.fixture
def threads_before() -> Iterator[int]:
    yield threading.active_count()


# -- handlers written for http.server run unchanged ---------------------------------------


def test_keepalive_requests_body_stream_and_error() -> None:
    with running(make()) as server, connect(server) as s:
        for i in range(5):
            s.sendall(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert read_response(s).endswith(f"hello /{i}".encode())
        s.sendall(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde")
        assert read_response(s).endswith(b"edcba")
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(4096)
            assert chunk, "connection closed inside a chunked response"
            data += chunk
        assert b"Transfer-Encoding: chunked" in data and b"part2;" in data
        s.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 500")
        assert get(server, "/after").endswith(b"hello /after")


def test_static_handler_through_partial(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"static content")
    class Static11(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Static11, directory=str(tmp_path))
    server = PooledHTTPServer(("127.0.0.1", 0), handler)
    with running(server), connect(server) as s:
        for _ in range(3):
            s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = read_response(s)
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"static content")
        s.sendall(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 404")


def test_pipelined_requests_answered_in_order() -> None:
    with running(make()) as server, connect(server) as s:
        s.sendall(b"".join(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i in range(10)))
        for i in range(10):
            assert read_response(s).endswith(f"hello /{i}".encode())


def test_portable_poller() -> None:
    with running(make(portable_poller=True)) as server, connect(server) as s:
        for i in range(3):
            s.sendall(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert read_response(s).endswith(f"hello /{i}".encode())
        s.sendall(b"GET /p HTT")
        time.sleep(0.05)
        s.sendall(b"P/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).endswith(b"hello /p")


def test_head_split_across_reads_and_eof_inside_head() -> None:
    with running(make()) as server:
        with connect(server) as s:
            for piece in (b"GET /sp", b"lit HTTP/1.1\r\nHo", b"st: t\r\n", b"\r\n"):
                s.sendall(piece)
                time.sleep(0.02)
            assert read_response(s).endswith(b"hello /split")
        with connect(server) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost")
            s.shutdown(socket.SHUT_WR)
            assert read_response(s).startswith(b"HTTP/1.1 400")


# -- threads, deadlines, cap ------------------------------------------------------------


def test_idle_connections_hold_no_thread(threads_before: int) -> None:
    server = make(max_workers=4)
    with running(server):
        clients = []
        try:
            for _ in range(200):
                c = connect(server)
                c.sendall(REQ)
                clients.append(c)
            for c in clients:
                assert read_response(c).endswith(b"hello /")
            assert wait_for(lambda: server.connection_count == 200)
            # 4 workers + the serve_forever thread, whatever the number of connections.
            assert threading.active_count() <= threads_before + 4 + 1
            assert get(server, "/normal").endswith(b"hello /normal")
        finally:
            for c in clients:
                c.close()


def test_threads_stay_bounded_under_concurrent_clients(threads_before: int) -> None:
    server = make(max_workers=3)
    errors: list[BaseException] = []
    peak = [0]

    def client(n: int) -> None:
        try:
            with connect(server) as s:
                for i in range(5):
                    s.sendall(f"GET /{n}-{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    assert read_response(s).endswith(f"hello /{n}-{i}".encode())
        except BaseException as exc:
            errors.append(exc)

    with running(server):
        workers = [threading.Thread(target=client, args=(n,)) for n in range(40)]
        for t in workers:
            t.start()
        for t in workers:
            peak[0] = max(peak[0], threading.active_count() - sum(w.is_alive() for w in workers))
            t.join(20)
        assert not any(t.is_alive() for t in workers)
    assert not errors
    assert server.pool.worker_count <= 3 if server._pool else True
    assert peak[0] <= threads_before + 3 + 1


def test_slowloris_gets_408_while_normal_client_is_served() -> None:
    server = make(Limits(head_timeout=1.0), max_workers=2)
    head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    with running(server):
        slow = [connect(server) for _ in range(50)]
        for s in slow:
            s.setblocking(False)
        answers: dict[int, bytes] = {}
        closed: set[int] = set()
        normal_ok = False
        deadline = time.monotonic() + 8.0
        step = 0
        try:
            while len(closed) < len(slow) and time.monotonic() < deadline:
                for i, s in enumerate(slow):
                    if i in closed:
                        continue
                    try:
                        data = s.recv(4096)
                        if data:
                            answers[i] = answers.get(i, b"") + data
                        else:
                            closed.add(i)
                            continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed.add(i)
                        continue
                    if i not in answers:
                        try:
                            s.send(head[step:step + 1])
                        except OSError:
                            pass
                step += 1
                if step == 3:
                    # Meanwhile a normal client (2 workers, 50 slow clients) is served.
                    assert get(server, "/normal").endswith(b"hello /normal")
                    normal_ok = True
                time.sleep(0.1)
        finally:
            for s in slow:
                s.close()
    assert normal_ok
    assert len(closed) == 50, f"only {len(closed)} slow clients were closed"
    assert all(answers.get(i, b"").startswith(b"HTTP/1.1 408") for i in range(50))


def test_idle_keepalive_timeout_closes_silently() -> None:
    server = make(Limits(keepalive_timeout=0.3, head_timeout=5.0))
    with running(server), connect(server) as s:
        s.sendall(REQ)
        assert read_response(s).endswith(b"hello /")
        s.settimeout(5.0)
        assert s.recv(100) == b""  # closed, no response
        assert wait_for(lambda: server.connection_count == 0)


def test_first_request_wait_uses_head_timeout() -> None:
    server = make(Limits(head_timeout=0.3))
    with running(server), connect(server) as s:
        assert s.recv(100) == b""  # connected, never sent a byte: closed silently


def test_connection_cap_stops_accepting_until_room() -> None:
    server = make(max_connections=2)
    with running(server):
        a, b = connect(server), connect(server)
        try:
            for s in (a, b):
                s.sendall(REQ)
                assert read_response(s).endswith(b"hello /")
            with connect(server, timeout=0.5) as c:  # the kernel backlog completes it
                c.sendall(REQ)
                with pytest.raises(socket.timeout):
                    c.recv(100)  # not accepted: no answer while the cap is reached
                assert server.connection_count == 2
                a.close()
                c.settimeout(5.0)
                assert read_response(c).endswith(b"hello /")
        finally:
            a.close()
            b.close()


def test_default_max_connections_follows_rlimit() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 16 <= default_max_connections() <= max(soft, 100_000)
    assert make().max_connections == default_max_connections()


# -- shutdown and leaks -------------------------------------------------------------------


def test_graceful_shutdown_finishes_in_flight_request(threads_before: int) -> None:
    fds = open_fds()
    server = make()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    idle = connect(server)
    idle.sendall(REQ)
    assert read_response(idle).endswith(b"hello /")
    busy = connect(server)
    SLEEPING.clear()
    busy.sendall(b"GET /sleep=0.5 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert SLEEPING.wait(5)
    server.shutdown()  # returns once the in-flight request is done
    thread.join(5)
    assert not thread.is_alive()
    assert read_response(busy).endswith(b"hello /sleep=0.5")
    assert busy.recv(100) == b""  # closed after its response
    assert idle.recv(100) == b""  # parked connection closed
    server.server_close()
    idle.close()
    busy.close()
    assert threading.active_count() == threads_before
    assert open_fds() == fds


def test_shutdown_grace_bounds_a_stuck_request() -> None:
    server = make(shutdown_grace=0.3, max_workers=1)

    class Stuck(Hello):
        def do_GET(self) -> None:
            SLEEPING.set()
            self.rfile.read(1)  # a body that never comes: blocks until the socket is shut
            super().do_GET()

    server.RequestHandlerClass = Stuck
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    with connect(server) as s:
        SLEEPING.clear()
        # Larger than prefetch_body: the handler runs and blocks in its read.
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        assert SLEEPING.wait(5)
        t0 = time.monotonic()
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive()
        server.server_close()
        assert time.monotonic() - t0 < 5.0  # bounded by the grace, not by the body timeout
        assert server.pool.worker_count == 0 if server._pool else True


def test_no_leaks_after_1000_connections(threads_before: int) -> None:
    fds = open_fds()
    server = make()
    with running(server):
        for i in range(1000):
            with connect(server) as s:
                if i % 3 == 0:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    assert read_response(s).endswith(b"hello /")
                elif i % 3 == 1:
                    s.sendall(b"GET / HTT")  # gone mid-head
                # else: connect and leave
        assert wait_for(lambda: server.connection_count == 0)
    assert threading.active_count() == threads_before
    assert open_fds() == fds


def test_handle_request_without_loop() -> None:
    server = make()
    try:
        with connect(server) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            server.handle_request()
            assert read_response(s).endswith(b"hello /x")
    finally:
        server.server_close()


# -- TLS ----------------------------------------------------------------------------------


def test_tls_keepalive_and_pipelining(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(sctx)
    cctx = ssl.create_default_context()
    ca.configure_trust(cctx)
    server = make(ssl_context=sctx)
    with running(server):
        raw = connect(server)
        with cctx.wrap_socket(raw, server_hostname="localhost") as s:
            for i in range(3):
                s.sendall(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                assert read_response(s).endswith(f"hello /{i}".encode())  # type: ignore[arg-type]
            s.sendall(b"".join(f"GET /p{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
                               for i in range(4)))
            for i in range(4):
                assert read_response(s).endswith(f"hello /p{i}".encode())  # type: ignore[arg-type]
        # A client that never finishes the handshake does not block anyone.
        with connect(server) as stalled:
            stalled.sendall(b"\x16\x03\x01")
            raw = connect(server)
            with cctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert read_response(s).endswith(b"hello /ok")  # type: ignore[arg-type]


# -- lingering: thread-per-connection while workers are free, parking under pressure --------


def test_lingering_workers_give_way_to_waiting_requests() -> None:
    # Two workers, both holding an idle keep-alive client (linger_max far away): a third
    # client's request must still be served, because a lingering worker parks its
    # connection as soon as a request waits for a worker.
    server = make(max_workers=2, linger_max=30.0, inline=False)
    with running(server):
        held = [connect(server) for _ in range(2)]
        try:
            for c in held:
                c.sendall(REQ)
                assert read_response(c).endswith(b"hello /")
            for _ in range(3):
                assert get(server, "/third").endswith(b"hello /third")
            for c in held:  # the parked clients are still served
                c.sendall(REQ)
                assert read_response(c).endswith(b"hello /")
        finally:
            for c in held:
                c.close()


class Holding(BaseHTTPRequestHandler):
    """/hold blocks until GATE opens (a request waiting on a database); / answers at once."""

    protocol_version = "HTTP/1.1"
    GATE = threading.Event()
    HOLDING = threading.Semaphore(0)

    def do_GET(self) -> None:
        if self.path == "/hold":
            Holding.HOLDING.release()
            Holding.GATE.wait(10.0)
        body = b"done " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_overflow_serves_a_short_request_while_every_worker_blocks() -> None:
    # Both workers held by blocking requests: with max_overflow a short request is served
    # now, not after one of them ends (bench_wsgi.py --blocking measures the latency).
    Holding.GATE.clear()
    server = make(max_workers=2, max_overflow=1, inline=False, handler=Holding)
    with running(server):
        held = [connect(server) for _ in range(2)]
        try:
            for c in held:
                c.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
            for _ in range(2):
                assert Holding.HOLDING.acquire(timeout=5.0)
            with connect(server, timeout=3.0) as s:
                s.sendall(b"GET /quick HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert read_response(s).endswith(b"done /quick")
            Holding.GATE.set()
            for c in held:
                assert read_response(c).endswith(b"done /hold")
        finally:
            Holding.GATE.set()
            for c in held:
                c.close()


def test_lingering_worker_parks_idle_connection_after_linger_max() -> None:
    server = make(max_workers=4, linger_max=0.05, inline=False)
    with running(server), connect(server) as c:
        c.sendall(REQ)
        assert read_response(c).endswith(b"hello /")
        assert wait_for(lambda: server.pool.busy == 0)  # parked: no worker holds it
        c.sendall(REQ)
        assert read_response(c).endswith(b"hello /")


def test_shutdown_ends_a_lingering_worker(threads_before: int) -> None:
    server = make(max_workers=4, linger_max=30.0, inline=False)
    c = connect(server)
    try:
        with running(server):
            c.sendall(REQ)
            assert read_response(c).endswith(b"hello /")
            assert wait_for(lambda: server.pool.busy == 1)  # the worker lingers on it
        c.settimeout(5.0)
        assert c.recv(100) == b""  # closed by the shutdown
    finally:
        c.close()
    assert wait_for(lambda: threading.active_count() <= threads_before)


# -- inline serving: the loop thread runs handlers; a slow one loses the loop ---------------


class Gated(Hello):
    """``/gate`` blocks (bounded) until the test opens GATE; everything else is Hello."""

    def do_GET(self) -> None:
        if self.path == "/gate":
            GATED.release()
            GATE.wait(10)
        super().do_GET()


GATE = threading.Event()
GATED = threading.Semaphore(0)


def test_inline_serves_on_the_loop_thread_without_workers() -> None:
    # A budget no handler reaches: every request must be served by the loop thread itself.
    server = make(inline_budget=30.0, handler=Hello)
    with running(server):
        clients = [connect(server) for _ in range(4)]
        try:
            for i in range(5):
                for n, c in enumerate(clients):
                    c.sendall(f"GET /{n}-{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                for n, c in enumerate(clients):
                    assert read_response(c).endswith(f"hello /{n}-{i}".encode())
        finally:
            for c in clients:
                c.close()
        assert server._pool is None or server.pool.worker_count == 0


@pytest.mark.parametrize("portable", [False, True], ids=["epoll", "selectors"])
@pytest.mark.parametrize("blocked", [1, 3])
def test_inline_handler_that_blocks_loses_the_loop(blocked: int, portable: bool,
                                                    threads_before: int) -> None:
    # ``blocked`` handlers wait on GATE (on the loop thread, one after another, each losing
    # the loop to the next leader): another client must still be answered meanwhile. Without
    # the hand-over its read would time out, because GATE opens only after it is answered.
    GATE.clear()
    server = make(max_workers=4, handler=Gated, portable_poller=portable)
    with running(server):
        slow = [connect(server) for _ in range(blocked)]
        try:
            for s in slow:
                s.sendall(b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\n")
                assert GATED.acquire(timeout=5)
            with connect(server) as c:
                for i in range(3):
                    c.sendall(f"GET /fast{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    assert read_response(c).endswith(f"hello /fast{i}".encode())
            GATE.set()
            for s in slow:
                assert read_response(s).endswith(b"hello /gate")
                for _ in range(2):  # still good after its handler lost the loop, and back
                    s.sendall(REQ)  # on the loop (level-triggered again with epoll)
                    assert read_response(s).endswith(b"hello /")
        finally:
            GATE.set()
            for s in slow:
                s.close()
        assert server.pool.worker_count <= 4
    assert wait_for(lambda: threading.active_count() <= threads_before)


def test_inline_pipelined_requests_on_several_connections_stay_in_order() -> None:
    server = make(inline_budget=30.0)
    with running(server):
        clients = [connect(server) for _ in range(3)]
        try:
            for n, c in enumerate(clients):
                c.sendall(b"".join(f"GET /{n}/{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
                                   for i in range(4)))
            for n, c in enumerate(clients):
                for i in range(4):
                    assert read_response(c).endswith(f"hello /{n}/{i}".encode())
        finally:
            for c in clients:
                c.close()


def test_inline_watchdog_sleeps_while_nothing_is_served() -> None:
    # An idle server must not wake up every inline_budget: the watchdog waits for a handler.
    server = make(inline_budget=0.005)
    with running(server):
        assert get(server, "/a").endswith(b"hello /a")
        assert wait_for(lambda: server._leadership.watch_idle, 5.0)
        assert get(server, "/b").endswith(b"hello /b")  # and it wakes for the next one
        assert wait_for(lambda: server._leadership.watch_idle, 5.0)
    assert not any(t.name == "minihttp-watch" for t in threading.enumerate())


GATES = {"/gate-a": threading.Event(), "/gate-b": threading.Event()}
ENTERED = {path: threading.Event() for path in GATES}


class TwoGates(Hello):
    def do_GET(self) -> None:
        gate = GATES.get(self.path)
        if gate is not None:
            ENTERED[self.path].set()
            gate.wait(10)
        super().do_GET()


def test_inline_second_blocked_handler_is_still_detected_after_the_first_ends() -> None:
    # A blocks and loses the loop; B blocks on the new leader; then A ends. A's end must not
    # hide B from the watchdog: C is answered while B still blocks.
    for event in (*GATES.values(), *ENTERED.values()):
        event.clear()
    server = make(max_workers=4, handler=TwoGates)
    with running(server), connect(server) as a, connect(server) as b:
        try:
            a.sendall(b"GET /gate-a HTTP/1.1\r\nHost: t\r\n\r\n")
            assert ENTERED["/gate-a"].wait(5)
            assert get(server, "/1").endswith(b"hello /1")  # A lost the loop
            b.sendall(b"GET /gate-b HTTP/1.1\r\nHost: t\r\n\r\n")
            assert ENTERED["/gate-b"].wait(5)
            GATES["/gate-a"].set()
            assert read_response(a).endswith(b"hello /gate-a")
            assert get(server, "/2").endswith(b"hello /2")  # B lost the loop too
            GATES["/gate-b"].set()
            assert read_response(b).endswith(b"hello /gate-b")
        finally:
            for event in GATES.values():
                event.set()


class Escapes(Hello):
    """handle_one_request itself raises after answering /escape (past the server's own
    error handling, which turns a do_GET exception into a 500)."""

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if self.path == "/escape":
            raise RuntimeError("escaped the handler (expected by the test)")


def test_inline_exception_escaping_the_handler_is_reported_with_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    server = make(handler=Escapes, inline_budget=30.0)
    with caplog.at_level(logging.ERROR, logger="minihttp"), running(server):
        with connect(server) as s:
            s.sendall(b"GET /escape HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(s).endswith(b"hello /escape")
            assert s.recv(100) == b""  # then closed
        assert get(server, "/after").endswith(b"hello /after")  # the loop goes on
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(r.exc_info and r.exc_info[0] is RuntimeError for r in errors)


class StopsServer(Hello):
    def do_GET(self) -> None:
        if self.path == "/stop":
            self.server.shutdown()  # from a handler running on the loop thread: no deadlock
        super().do_GET()


def test_inline_shutdown_from_a_handler_and_serving_again() -> None:
    server = make(handler=StopsServer)
    try:
        for _ in range(2):  # serve_forever twice on one server
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": 0.05})
            thread.start()
            assert get(server, "/a").endswith(b"hello /a")
            assert get(server, "/stop").endswith(b"hello /stop")
            thread.join(10)
            assert not thread.is_alive()
            assert not any(t.name == "minihttp-watch" for t in threading.enumerate())
    finally:
        server.server_close()


# -- small bodies are waited for by the loop, like heads -----------------------------------


SLOW_POST = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789"


@pytest.mark.parametrize("inline", [True, False])
def test_slow_small_bodies_hold_no_thread(inline: bool) -> None:
    # More slow senders than workers: without the loop waiting for their bodies, every
    # worker would sit in a body read and a normal GET would wait for body_timeout.
    server = make(Limits(body_timeout=30.0), max_workers=2, inline=inline)
    with running(server):
        slow = [connect(server) for _ in range(6)]
        try:
            for c in slow:
                c.sendall(SLOW_POST)
            time.sleep(0.2)
            # Answered within the client's 5 s timeout, not after body_timeout (30 s).
            assert get(server, "/normal").endswith(b"hello /normal")
            for c in slow:  # the rest of each body arrives: every POST is answered
                c.sendall(b"x" * 990)
            for c in slow:
                assert read_response(c).endswith((b"x" * 990)[::-1] + b"9876543210")
        finally:
            for c in slow:
                c.close()


def test_body_arriving_in_pieces_and_pipelined_after_it() -> None:
    server = make()
    with running(server), connect(server) as s:
        s.sendall(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n")
        time.sleep(0.05)
        s.sendall(b"abc")
        time.sleep(0.05)
        s.sendall(b"defGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s).endswith(b"fedcba")
        assert read_response(s).endswith(b"hello /next")


def test_expect_100_continue_is_not_held_back() -> None:
    # The client waits for 100 Continue before sending its body: the loop must not wait.
    server = make()
    with running(server), connect(server) as s:
        s.sendall(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100")
        s.sendall(b"hello")
        assert read_response(s).endswith(b"olleh")


def test_small_body_never_completed_gets_408() -> None:
    server = make(Limits(head_timeout=0.5))
    with running(server), connect(server) as s:
        s.sendall(SLOW_POST)
        answer = read_response(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"request body" in answer
        assert s.recv(100) == b""


def test_handing_the_loop_over_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    GATE.clear()
    server = make(max_workers=4, handler=Gated)
    with (caplog.at_level(logging.DEBUG, logger="minihttp.error"), running(server),
          connect(server) as s):
        try:
            s.sendall(b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\n")
            assert GATED.acquire(timeout=5)
            assert get(server, "/other").endswith(b"hello /other")
        finally:
            GATE.set()
        assert read_response(s).endswith(b"hello /gate")
    assert any("held the loop" in r.getMessage() for r in caplog.records)


def test_a_plain_static_handler_class_serves_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # http.server's default without directory=: the current directory. A pooled server runs
    # no __init__ for a minihttp class (attach), which once left the handler without any
    # directory: every request answered 500. A subclass naming its own directory keeps it,
    # on either server.
    from minihttp.server import ThreadingHTTPServer

    (tmp_path / "a.txt").write_bytes(b"from cwd")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.txt").write_bytes(b"from the class")
    monkeypatch.chdir(tmp_path)

    class Quiet(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    rooted = type("Rooted", (Quiet,), {"directory": str(tmp_path / "root")})
    for server_cls in (PooledHTTPServer, ThreadingHTTPServer):
        for handler, want in ((Quiet, b"from cwd"), (rooted, b"from the class")):
            with running(server_cls(("127.0.0.1", 0), handler)) as server:
                resp = get(server, "/a.txt")
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(want), \
                (server_cls.__name__, handler.__name__, resp[:200])


def test_a_handler_class_with_its_own_init_has_it_run() -> None:
    # Code written for http.server may set its state in __init__ before super().__init__.
    seen: list[str] = []

    class Greeter(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.greeting = b"hello from __init__"
            seen.append("init")
            super().__init__(*args, **kwargs)

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.greeting)))
            self.end_headers()
            self.wfile.write(self.greeting)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with running(PooledHTTPServer(("127.0.0.1", 0), Greeter)) as server, \
            connect(server) as s:
        for _ in range(2):  # the connection goes on: handle/finish are the class's own
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            resp = read_response(s)
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"hello from __init__")
    assert seen == ["init"]
