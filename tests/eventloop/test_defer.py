"""Deferred responses (``defer_until_readable``): the pooled server's loop waits for a
handler's other socket, so the request holds no thread; elsewhere the handler waits itself.

Handlers defer on one end of a ``socket.socketpair()`` that the test writes to when it wants
the request to go on. Everything is loopback, every wait is bounded.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.proxy import PooledProxyServer, ProxyConfig
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.proxy import Reply, Seen, Upstream
from tests.helpers.servers import open_fds, running, wait_for

#: The sockets handlers wait for, by name (``/wait/<name>/<timeout>``): the far ends the
#: test writes to are in PEERS.
AUX: dict[str, socket.socket] = {}
PEERS: dict[str, socket.socket] = {}
#: (path, whether the server took the deferral), put by the handler as it defers.
DEFERS: queue.Queue[tuple[str, bool]] = queue.Queue()
#: Seconds from deferring to ``then``, for timeout checks.
WAITED: list[float] = []


class Deferring(BaseHTTPRequestHandler):
    """``/hello``; ``/wait|raise|twice|sleepy/<name>/<timeout>``; ``/self`` (own pair)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def defer(self, sock: socket.socket, then: Callable[[bool], None],
              timeout: float | None) -> None:
        """Defer as the contract says (the last action), or wait here when refused."""
        deferred = self.defer_until_readable(sock, then, timeout)
        DEFERS.put((self.path, deferred))
        if not deferred:
            then(bool(select.select([sock], [], [], timeout)[0]))

    def do_GET(self) -> None:
        kind, _, rest = self.path.split("?")[0].strip("/").partition("/")
        name, _, wait = rest.partition("/")
        timeout = float(wait) if wait else 10.0
        if kind == "hello":
            self.answer(200, b"hello")
        elif kind == "self":  # a pair of its own, readable at once: hygiene under volume
            a, b = socket.socketpair()
            a.sendall(b"!")

            def own(ready: bool) -> None:
                data = b.recv(16) if ready else b"?"
                a.close()
                b.close()
                self.answer(200, b"self " + data)

            self.defer(b, own, timeout)
        else:
            sock = AUX[name]
            start = time.monotonic()
            if kind == "sleepy":
                time.sleep(0.02)  # holds the loop past inline_budget: deposed

            def then(ready: bool) -> None:
                WAITED.append(time.monotonic() - start)
                if kind == "raise":
                    raise RuntimeError("then() failure (expected by the test)")
                if not ready:
                    self.answer(504, b"timed out")
                    return
                got = sock.recv(64)
                if kind == "twice" and got == b"a":
                    self.defer(sock, lambda ready2: self.answer(200, b"got a+" + sock.recv(64)),
                               timeout)
                    return
                self.answer(200, b"got " + got)

            self.defer(sock, then, timeout)


@pytest.fixture(autouse=True)
def pairs() -> Iterator[None]:
    """Fresh socket pairs ``a``..``e`` per test; all closed afterwards."""
    while not DEFERS.empty():
        DEFERS.get_nowait()
    WAITED.clear()
    for name in "abcde":
        AUX[name], PEERS[name] = socket.socketpair()
        AUX[name].settimeout(5)
    try:
        yield
    finally:
        for sock in (*AUX.values(), *PEERS.values()):
            sock.close()
        AUX.clear()
        PEERS.clear()


def pooled(**attrs: Any) -> PooledHTTPServer:
    """A PooledHTTPServer subclass with ``attrs``; by default no handler is ever deposed."""
    attrs.setdefault("inline_budget", 30.0)
    attrs.setdefault("max_workers", 4)
    cls = type("DeferPooled", (PooledHTTPServer,), attrs)
    server: PooledHTTPServer = cls(("127.0.0.1", 0), Deferring)
    return server


class Client:
    """A keep-alive client reading Content-Length responses (pipelining kept apart)."""

    def __init__(self, server: Any, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(server.server_address[:2], timeout=timeout)
        self.buf = b""

    def send(self, *paths: str, host: str = "t") -> None:
        self.sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                                   for p in paths))

    def response(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        assert data, f"connection closed; got {self.buf!r}"
        return data

    def pending(self) -> bool:
        """Whether bytes have arrived that were not read yet."""
        return bool(self.buf) or bool(select.select([self.sock], [], [], 0)[0])

    def close(self) -> None:
        self.sock.close()


def status(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1])


def body(resp: bytes) -> bytes:
    return resp.partition(b"\r\n\r\n")[2]


def next_defer(path: str) -> bool:
    """Wait (bounded) until the handler of ``path`` deferred; whether the server took it."""
    got, deferred = DEFERS.get(timeout=5)
    assert got == path
    return deferred


# -- the contract --------------------------------------------------------------------------


def test_deferred_on_pooled_and_waited_for_on_threads() -> None:
    answers = []
    servers: list[tuple[Any, str, bool]] = [
        (pooled(), "a", True), (ThreadingHTTPServer(("127.0.0.1", 0), Deferring), "b", False)]
    for server, name, expect in servers:
        with running(server):
            c = Client(server)
            c.send(f"/wait/{name}")
            assert next_defer(f"/wait/{name}") is expect
            assert not c.pending()  # nothing until the other socket is readable
            PEERS[name].sendall(b"x")
            answers.append(b"\r\n".join(line for line in c.response().split(b"\r\n")
                                         if not line.startswith(b"Date:")))
            c.close()
            if expect:
                assert server._pool is None  # the loop waited: no thread was involved
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200 ") and body(answers[0]) == b"got x"


def test_timeout_calls_then_false_and_keeps_the_connection() -> None:
    with running(pooled()) as server:
        c = Client(server)
        c.send("/wait/a/0.3")
        assert next_defer("/wait/a/0.3")
        resp = c.response()
        assert status(resp) == 504 and body(resp) == b"timed out"
        assert 0.27 <= WAITED[-1] < 5.0  # about the timeout (the upper bound is generous)
        c.send("/hello", "/wait/b")  # keep-alive: the same connection goes on
        assert body(c.response()) == b"hello"
        assert next_defer("/wait/b")
        PEERS["b"].sendall(b"y")
        assert body(c.response()) == b"got y"
        c.close()


def test_then_raising_gives_500_and_deferring_twice_works() -> None:
    with running(pooled()) as server:
        c = Client(server)
        c.send("/raise/a")
        assert next_defer("/raise/a")
        PEERS["a"].sendall(b"x")
        assert status(c.response()) == 500
        c.send("/hello")
        assert body(c.response()) == b"hello"
        c.send("/twice/b")
        assert next_defer("/twice/b")
        PEERS["b"].sendall(b"a")
        assert next_defer("/twice/b")  # then() deferred again
        assert not c.pending()
        PEERS["b"].sendall(b"b")
        assert body(c.response()) == b"got a+b"
        c.close()
        assert server._pool is None


# -- the loop is free meanwhile -------------------------------------------------------------


def test_other_clients_are_served_on_the_loop_while_one_waits() -> None:
    # No handler is ever deposed here (inline_budget 30 s): a hand-off could only come from
    # the deferred request itself. Were it not deferred, it would block the loop and the
    # other clients' reads would time out.
    with running(pooled()) as server:
        slow = Client(server)
        slow.send("/wait/a")
        next_defer("/wait/a")  # (not asserted: what matters is what follows)
        others = [Client(server) for _ in range(3)]
        try:
            for i in range(5):
                for c in others:
                    c.send(f"/hello?{i}")
                for c in others:
                    assert body(c.response()) == b"hello"
            assert not slow.pending()
            assert server._pool is None  # no hand-off: the waiting request held no thread
        finally:
            PEERS["a"].sendall(b"x")
        assert body(slow.response()) == b"got x"
        for c in (slow, *others):
            c.close()


def test_pipelined_request_waits_its_turn_without_spinning() -> None:
    with running(pooled()) as server:
        c = Client(server)
        c.send("/wait/a")
        assert next_defer("/wait/a")
        c.send("/hello")  # level-triggered client: readable while its first request waits
        wall0, cpu0 = time.monotonic(), time.process_time()
        time.sleep(0.5)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        assert cpu < wall / 2, f"the loop spins: {cpu:.3f} s CPU in {wall:.3f} s"
        assert not c.pending()  # the second request is not answered before the first
        PEERS["a"].sendall(b"x")
        assert body(c.response()) == b"got x"
        assert body(c.response()) == b"hello"
        c.send("/wait/b", "/hello")  # both at once: the second one is buffered meanwhile
        assert next_defer("/wait/b")
        PEERS["b"].sendall(b"z")
        assert body(c.response()) == b"got z"
        assert body(c.response()) == b"hello"
        c.close()


# -- shutdown, deposed handlers, hygiene ----------------------------------------------------


def test_shutdown_while_deferred_still_answers_and_leaves_nothing() -> None:
    threads = set(threading.enumerate())
    fds = open_fds()
    server = pooled()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    c = Client(server)
    try:
        c.send("/wait/a")
        assert next_defer("/wait/a")
        stopping = threading.Thread(target=server.shutdown)
        stopping.start()
        assert wait_for(lambda: server._pool is not None)  # the drain gave it to a worker
        assert not c.pending()
        PEERS["a"].sendall(b"x")
        resp = c.response()
        assert status(resp) == 200 and body(resp) == b"got x"
        assert c.sock.recv(100) == b""  # closed after its response: the server is stopping
        stopping.join(10)
        serving.join(10)
        assert not stopping.is_alive() and not serving.is_alive()
    finally:
        server.server_close()
        c.close()
    assert wait_for(lambda: set(threading.enumerate()) <= threads), \
        set(threading.enumerate()) - threads
    assert open_fds() <= fds


def test_shutdown_grace_bounds_a_deferred_wait() -> None:
    """A deferred request whose socket stays silent past ``shutdown_grace`` resumes as timed
    out (its handler answers 504) instead of holding shutdown for its own 3 s timeout. (On a
    loaded machine the answer may lose the race with the cut of stragglers at the end of the
    grace: a closed connection is the other acceptable outcome.)"""
    server = pooled(shutdown_grace=0.3)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    c = Client(server)
    try:
        c.send("/wait/a/3")
        assert next_defer("/wait/a/3")
        started = time.monotonic()
        server.shutdown()
        serving.join(10)
        server.server_close()
        took = time.monotonic() - started
        assert took < 2.0, took  # the grace (0.3 s) bounded it, not the 3 s wait
        c.sock.settimeout(2.0)
        got = c.sock.recv(4096)
        assert got == b"" or got.startswith(b"HTTP/1.1 504 "), got
    finally:
        server.server_close()
        c.close()


def test_deposed_handler_hands_its_wait_to_the_loop() -> None:
    """A handler deposed by the watchdog (it held the loop past inline_budget) still defers:
    its thread gives the wait to the loop and goes (before: it waited itself, a thread held
    per slow upstream or slow reader on a loaded machine)."""
    with running(pooled(inline_budget=0.002)) as server:
        c = Client(server)
        c.send("/sleepy/a")
        assert next_defer("/sleepy/a") is True  # off the loop, and still deferred
        fd = AUX["a"].fileno()
        assert wait_for(lambda: fd in server._loop.waits.by_fd)  # the loop waits for it
        assert not c.pending()
        PEERS["a"].sendall(b"x")
        assert body(c.response()) == b"got x"
        c.send("/hello")  # and the connection goes on
        assert body(c.response()) == b"hello"
        c.close()


def test_a_handler_off_the_loop_of_a_non_inline_server_waits_itself() -> None:
    """With ``inline = False`` a resumed request would run on the loop thread: every
    handler there waits itself, as before."""
    with running(pooled(inline=False)) as server:
        c = Client(server)
        c.send("/wait/a")
        assert next_defer("/wait/a") is False
        PEERS["a"].sendall(b"x")
        assert body(c.response()) == b"got x"
        c.close()


def test_no_descriptor_or_thread_left_after_200_deferred_requests() -> None:
    threads = set(threading.enumerate())
    fds = open_fds()
    with running(pooled()) as server:
        for _ in range(20):
            c = Client(server)
            for i in range(10):
                c.send("/self")
                assert body(c.response()) == b"self !", i
            c.close()
        assert server._pool is None
    deferred = [DEFERS.get_nowait() for _ in range(DEFERS.qsize())]
    assert len(deferred) == 200 and all(d for _p, d in deferred)
    assert wait_for(lambda: set(threading.enumerate()) <= threads)
    assert open_fds() <= fds + 2, "descriptors leaked"


# -- watched sockets: registered once, out of epoll when nobody waits -----------------------


@pytest.fixture
def epoll_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every registration change the loop's epoll poller makes, as (method, descriptor)."""
    from minihttp.eventloop.pollers import EpollPoller

    calls: list[tuple[str, int]] = []
    for name in ("add", "rearm", "add_level", "to_level", "remove_level"):
        original = getattr(EpollPoller, name)

        def spy(self: Any, fd: int, _name: str = name, _original: Any = original) -> None:
            calls.append((_name, fd))
            _original(self, fd)

        monkeypatch.setattr(EpollPoller, name, spy)
    return calls


def test_a_socket_waited_for_again_is_registered_once(
        epoll_calls: list[tuple[str, int]]) -> None:
    # A pooled upstream socket is waited for request after request: it stays registered
    # (level-triggered, armed), so a wait after the first costs no epoll_ctl.
    with running(pooled()) as server:
        c = Client(server)
        for i in range(4):
            c.send(f"/wait/a?{i}")
            assert next_defer(f"/wait/a?{i}")
            PEERS["a"].sendall(b"x")
            assert body(c.response()) == b"got x"
        c.close()
        fd = AUX["a"].fileno()
        assert [call for call in epoll_calls if call[1] == fd] == [("add_level", fd)]
        assert server._pool is None


def test_a_watched_socket_nobody_waits_for_leaves_epoll_and_does_not_spin(
        epoll_calls: list[tuple[str, int]]) -> None:
    # Bytes nobody asked for on a socket the loop still watches (an upstream writing to an
    # idle pooled connection, or closing it): level-triggered, it would be reported on
    # every poll; the loop takes it out of epoll once, and a later wait registers it again.
    with running(pooled()) as server:
        c = Client(server)
        c.send("/wait/a")
        assert next_defer("/wait/a")
        PEERS["a"].sendall(b"x")
        assert body(c.response()) == b"got x"
        fd = AUX["a"].fileno()
        PEERS["a"].sendall(b"stray")  # never read by anyone
        wall0, cpu0 = time.monotonic(), time.process_time()
        time.sleep(0.5)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        assert cpu < wall / 2, f"the loop spins: {cpu:.3f} s CPU in {wall:.3f} s"
        assert wait_for(lambda: ("remove_level", fd) in epoll_calls)
        assert fd not in server._loop.waits.watched
        assert AUX["a"].recv(16) == b"stray"
        c.send("/wait/a")  # waited for again: registered again, woken as before
        assert next_defer("/wait/a")
        PEERS["a"].sendall(b"y")
        assert body(c.response()) == b"got y"
        c.close()
        assert [call for call in epoll_calls if call[1] == fd] == [
            ("add_level", fd), ("remove_level", fd), ("add_level", fd)]


# -- the proxy -------------------------------------------------------------------------------


class InFlight:
    """An upstream app taking 50 ms per request that notes how many it held at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def __call__(self, req: Seen) -> Reply:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        data = req.target.encode()
        return Reply(200, [("Content-Length", str(len(data)))], data)


def proxy_server(cfg: ProxyConfig, budget: float) -> PooledProxyServer:
    cls = type("DeferProxy", (PooledProxyServer,), {"inline_budget": budget})
    server: PooledProxyServer = cls(("127.0.0.1", 0), None, config=cfg)
    return server


@pytest.mark.parametrize("budget", [
    30.0,  # never deposed: the upstream in-flight count shows the loop did not wait
    # 20 ms: a handler is moved off the loop only past it. This failed while the watchdog
    # left its wake-up event set after sleeping idle (it then deposed a handler that had
    # just started, and the burst of resumed requests created the worker pool).
    0.02,
])
def test_proxy_upstream_waits_hold_no_thread(budget: float) -> None:
    cfg = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)
    app = InFlight()
    with Upstream(app) as up, running(proxy_server(cfg, budget)) as px:
        clients = [Client(px, timeout=10) for _ in range(20)]
        try:
            for i, c in enumerate(clients):
                c.send(f"{up.base}/n{i}", host=f"127.0.0.1:{up.port}")
            for i, c in enumerate(clients):
                resp = c.response()
                assert status(resp) == 200 and body(resp) == f"/n{i}".encode()
        finally:
            for c in clients:
                c.close()
        assert len(up.seen) == 20
        assert app.most > 1  # requests went upstream while others waited for theirs
        assert px._pool is None  # 20 upstream waits of 50 ms, none held a thread


def test_proxy_silent_upstream_gives_504_while_others_are_served() -> None:
    cfg = ProxyConfig(upstream_timeout=0.5, tunnel_idle_timeout=5, quiet=True)
    # Listening, never accepting: the kernel completes the handshake, nobody answers.
    with socket.create_server(("127.0.0.1", 0)) as silent, Upstream() as up, \
            running(proxy_server(cfg, 30.0)) as px:
        port = silent.getsockname()[1]
        stuck, other = Client(px), Client(px)
        try:
            t0 = time.monotonic()
            stuck.send(f"http://127.0.0.1:{port}/", host=f"127.0.0.1:{port}")
            other.send(f"{up.base}/", host=f"127.0.0.1:{up.port}")
            assert body(other.response()) == b"ok:"
            assert not stuck.pending()  # answered while the first request still waits
            resp = stuck.response()
            waited = time.monotonic() - t0
        finally:
            stuck.close()
            other.close()
        assert status(resp) == 504
        assert 0.45 <= waited < 5.0  # about upstream_timeout (generous upper bound)
        assert px._pool is None


def _streamed(pieces: int, pause: float, stall: float = 0.0) -> Callable[[Seen], Reply]:
    """An upstream app sending ``pieces`` body pieces ``pause`` seconds apart (after the
    head), then, with ``stall``, stopping that long before the last byte."""
    def app(req: Seen) -> Reply:
        def gen() -> Iterator[bytes]:
            for i in range(pieces):
                time.sleep(pause)
                yield b"piece%d;" % i
            if stall:
                time.sleep(stall)
            yield b"end"
        length = sum(len(b"piece%d;" % i) for i in range(pieces)) + 3
        return Reply(200, [("Content-Length", str(length))], gen())
    return app


def test_streamed_response_body_is_relayed_without_a_thread_or_spinning() -> None:
    """A body arriving in pieces 50 ms apart: each wait for the next piece is deferred to
    the loop (another client is answered meanwhile, no worker thread is created) and the
    loop sleeps while it waits (a re-armed wait that read nothing once spun the CPU)."""
    cfg = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)
    with Upstream(_streamed(6, 0.05)) as slow_up, Upstream() as up, \
            running(proxy_server(cfg, 30.0)) as px:
        stream, other = Client(px, timeout=10), Client(px)
        try:
            cpu, wall = time.process_time(), time.monotonic()
            stream.send(f"{slow_up.base}/s", host=f"127.0.0.1:{slow_up.port}")
            time.sleep(0.1)  # the head is out, the body is arriving
            other.send(f"{up.base}/", host=f"127.0.0.1:{up.port}")
            assert body(other.response()) == b"ok:"
            stream.sock.setblocking(False)
            try:
                stream.buf += stream.sock.recv(65536)
            except BlockingIOError:
                pass
            stream.sock.setblocking(True)
            stream.sock.settimeout(10)
            # The other client was answered while the stream was still arriving.
            assert not stream.buf.endswith(b"end"), stream.buf
            resp = stream.response()
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        finally:
            stream.close()
            other.close()
        assert status(resp) == 200
        assert body(resp) == b"".join(b"piece%d;" % i for i in range(6)) + b"end"
        assert px._pool is None
        assert wall >= 0.3 and cpu < 0.5 * wall, (cpu, wall)


def test_upstream_stalling_mid_body_cuts_the_client_off_at_the_timeout() -> None:
    """The head and part of the body are out when the upstream stops: past
    upstream_timeout the client connection is closed (a truncated body must never look
    complete), and the loop was free meanwhile."""
    cfg = ProxyConfig(upstream_timeout=0.5, tunnel_idle_timeout=5, quiet=True)
    with Upstream(_streamed(2, 0.0, stall=3.0)) as up, \
            running(proxy_server(cfg, 30.0)) as px:
        c = Client(px, timeout=10)
        try:
            t0 = time.monotonic()
            c.send(f"{up.base}/s", host=f"127.0.0.1:{up.port}")
            got = b""
            while True:
                piece = c.sock.recv(65536)
                if not piece:
                    break
                got += piece
            waited = time.monotonic() - t0
        finally:
            c.close()
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"piece0;piece1;")
        assert 0.45 <= waited < 2.5, waited
        assert px._pool is None
