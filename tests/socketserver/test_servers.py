"""minihttp.socketserver: the stdlib API, every server type with every strategy, shutdown,
error reporting, request cleanup, handlers."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import minihttp.socketserver as mss
from minihttp.socketserver import (
    BaseRequestHandler,
    DatagramRequestHandler,
    StreamRequestHandler,
    TCPServer,
    ThreadingMixIn,
    ThreadingTCPServer,
    ThreadPoolMixIn,
    UDPServer,
    UnixDatagramServer,
    UnixStreamServer,
)
from minihttp.socketserver.mixins import ForkingMixIn
from tests.helpers.servers import recv_line, running

CLIENT_TIMEOUT = 10.0


# -- helpers --------------------------------------------------------------------------------


class LineEcho(StreamRequestHandler):
    """Echo one line back (one line only: a forked child must not wait for EOF, because
    the test process's own client socket is inherited by the child)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class DatagramEcho(DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


@pytest.fixture
def sockdir(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, or a short directory when tmp_path is too long for AF_UNIX (108 bytes)."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    short = Path(tempfile.mkdtemp(prefix="mss", dir="/tmp"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


def stream_roundtrip(family: int, address: Any, payload: bytes) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(CLIENT_TIMEOUT)
        c.connect(address)
        c.sendall(payload + b"\n")
        return recv_line(c, CLIENT_TIMEOUT)


def datagram_roundtrip(family: int, address: Any, payload: bytes, client_path: Path | None) -> bytes:
    with socket.socket(family, socket.SOCK_DGRAM) as c:
        c.settimeout(CLIENT_TIMEOUT)
        if client_path is not None:
            c.bind(str(client_path))  # a Unix datagram client needs an address to get replies
        c.sendto(payload, address)
        data, _ = c.recvfrom(65536)
        return data


STRATEGIES: dict[str, tuple[type, ...]] = {
    "sync": (),
    "threading": (ThreadingMixIn,),
    "forking": (ForkingMixIn,),
    "pool": (ThreadPoolMixIn,),
}
KINDS = {
    "tcp": TCPServer,
    "udp": UDPServer,
    "unix_stream": UnixStreamServer,
    "unix_dgram": UnixDatagramServer,
}


# -- public names -------------------------------------------------------------------------------


def test_all_matches_stdlib_plus_our_additions() -> None:
    import socketserver as std

    extras = {"ThreadPoolMixIn", "ThreadPoolTCPServer", "ThreadPoolUnixStreamServer", "WorkerPool"}
    assert set(mss.__all__) == set(std.__all__) | extras
    assert len(mss.__all__) == len(set(mss.__all__))
    for name in mss.__all__:
        assert hasattr(mss, name), name


def test_stdlib_documented_attributes_exist() -> None:
    import socketserver as std

    for name in std.__all__:
        ours, theirs = getattr(mss, name), getattr(std, name)
        public = {a for a in vars(theirs) if not a.startswith("_")}
        for base in theirs.__mro__[1:-1]:
            public |= {a for a in vars(base) if not a.startswith("_")}
        missing = {a for a in public if not hasattr(ours, a)}
        assert not missing, (name, missing)
    assert mss.TCPServer.request_queue_size == std.TCPServer.request_queue_size
    assert mss.UDPServer.max_packet_size == std.UDPServer.max_packet_size
    assert mss.ForkingMixIn.max_children == std.ForkingMixIn.max_children
    assert mss.StreamRequestHandler.wbufsize == 0


def test_mixins_derive_from_object_like_the_stdlib() -> None:
    # Same MRO shape as the stdlib, so user classes resolve methods the same way.
    assert mss.ThreadingMixIn.__bases__ == (object,)
    assert mss.ForkingMixIn.__bases__ == (object,)
    assert [c.__name__ for c in mss.ThreadingTCPServer.__mro__] == \
        ["ThreadingTCPServer", "ThreadingMixIn", "TCPServer", "BaseServer", "object"]


# -- every server type with every strategy ---------------------------------------------------------


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_echo_matrix(kind: str, strategy: str, sockdir: Path) -> None:
    base = KINDS[kind]
    cls = type(f"{strategy}_{kind}", (*STRATEGIES[strategy], base), {"max_workers": 2})
    stream = kind in ("tcp", "unix_stream")
    handler = LineEcho if stream else DatagramEcho
    address: Any = str(sockdir / "s.sock") if kind.startswith("unix") else ("127.0.0.1", 0)
    server = cls(address, handler)
    family = server.address_family
    with running(server):
        for i in range(5):
            payload = f"hello {i}".encode()
            if stream:
                assert stream_roundtrip(family, server.server_address, payload) == payload + b"\n"
            else:
                client = sockdir / f"c{i}.sock" if kind.startswith("unix") else None
                got = datagram_roundtrip(family, server.server_address, payload, client)
                assert got == payload.upper()
    assert server.socket.fileno() == -1
    if strategy == "forking" and server.active_children is not None:
        assert not server.active_children, "children not collected"


def test_combined_classes_use_the_right_parts() -> None:
    pairs = {
        "ThreadingTCPServer": (mss.ThreadingMixIn, mss.TCPServer),
        "ThreadingUDPServer": (mss.ThreadingMixIn, mss.UDPServer),
        "ForkingTCPServer": (mss.ForkingMixIn, mss.TCPServer),
        "ForkingUDPServer": (mss.ForkingMixIn, mss.UDPServer),
        "ThreadingUnixStreamServer": (mss.ThreadingMixIn, mss.UnixStreamServer),
        "ThreadingUnixDatagramServer": (mss.ThreadingMixIn, mss.UnixDatagramServer),
        "ForkingUnixStreamServer": (mss.ForkingMixIn, mss.UnixStreamServer),
        "ForkingUnixDatagramServer": (mss.ForkingMixIn, mss.UnixDatagramServer),
        "ThreadPoolTCPServer": (mss.ThreadPoolMixIn, mss.TCPServer),
        "ThreadPoolUnixStreamServer": (mss.ThreadPoolMixIn, mss.UnixStreamServer),
    }
    for name, bases in pairs.items():
        assert getattr(mss, name).__bases__ == bases, name


# -- shutdown -----------------------------------------------------------------------------------


def test_shutdown_while_idle_does_not_wait_for_poll_interval() -> None:
    server = TCPServer(("127.0.0.1", 0), LineEcho)
    # A one-hour poll interval: only the wake-up byte can end the wait.
    thread = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
    thread.start()
    with server:
        stream_roundtrip(socket.AF_INET, server.server_address, b"x")  # loop is running
        server.shutdown()
        thread.join(10)
        assert not thread.is_alive()


def test_shutdown_before_the_loop_starts_stops_it_at_once() -> None:
    server = TCPServer(("127.0.0.1", 0), LineEcho)
    with server:
        done = threading.Thread(target=server.shutdown, daemon=True)
        done.start()
        time.sleep(0.05)
        loop = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
        loop.start()
        loop.join(10)
        done.join(10)
        assert not loop.is_alive() and not done.is_alive()
        # The request is consumed: the loop can be run again and shut down again.
        with running(server):
            assert stream_roundtrip(socket.AF_INET, server.server_address, b"again") == b"again\n"


def test_service_actions_still_run_every_poll_interval() -> None:
    calls = threading.Semaphore(0)

    class Server(TCPServer):
        def service_actions(self) -> None:
            calls.release()

    server = Server(("127.0.0.1", 0), LineEcho)
    with running(server):  # poll_interval=0.05
        for _ in range(3):
            assert calls.acquire(timeout=10)


class Gate(StreamRequestHandler):
    """A handler that waits until the test opens the gate."""

    entered: threading.Event
    gate: threading.Event

    def handle(self) -> None:
        self.server.entered.set()
        self.server.gate.wait(CLIENT_TIMEOUT)
        self.wfile.write(b"done\n")


def gated(cls: type, **attrs: Any) -> Any:
    server = cls(("127.0.0.1", 0), Gate)
    server.entered, server.gate = threading.Event(), threading.Event()
    for k, v in attrs.items():
        setattr(server, k, v)
    return server


def test_shutdown_while_busy_sync_waits_for_the_handler() -> None:
    server = gated(TCPServer)
    loop = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
    loop.start()
    with server, socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c:
        assert server.entered.wait(CLIENT_TIMEOUT)
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(0.2)
        assert stopper.is_alive(), "shutdown returned while a request was still in progress"
        server.gate.set()
        assert recv_line(c) == b"done\n"
        stopper.join(10)
        loop.join(10)
        assert not stopper.is_alive() and not loop.is_alive()


def test_shutdown_while_busy_threading_returns_and_close_joins() -> None:
    server = gated(ThreadingTCPServer)
    loop = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
    loop.start()
    with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c:
        assert server.entered.wait(CLIENT_TIMEOUT)
        server.shutdown()  # does not wait for the handler thread
        loop.join(10)
        assert not loop.is_alive()
        closer = threading.Thread(target=server.server_close, daemon=True)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "block_on_close: server_close must wait for the handler"
        server.gate.set()
        assert recv_line(c) == b"done\n"
        closer.join(10)
        assert not closer.is_alive()


def test_block_on_close_false_does_not_wait() -> None:
    server = gated(ThreadingTCPServer, block_on_close=False, daemon_threads=True)
    with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c:
        with running(server):
            assert server.entered.wait(CLIENT_TIMEOUT)
            # running() calls shutdown + server_close; they must not wait for the handler.
        assert not server.gate.is_set()
        server.gate.set()
        assert recv_line(c) == b"done\n"


def test_shutdown_from_inside_a_sync_handler_does_not_deadlock() -> None:
    class Stopper(StreamRequestHandler):
        def handle(self) -> None:
            self.server.shutdown()
            self.wfile.write(b"bye\n")

    server = TCPServer(("127.0.0.1", 0), Stopper)
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    with server:
        assert stream_roundtrip(socket.AF_INET, server.server_address, b"") == b"bye\n"
        loop.join(10)
        assert not loop.is_alive()


# -- errors and request cleanup -----------------------------------------------------------------


def test_handler_error_is_logged_with_traceback_and_server_keeps_serving(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    class Boom(StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if line == b"boom\n":
                raise ValueError("handler bug")
            self.wfile.write(line)

    for cls in (TCPServer, ThreadingTCPServer, mss.ThreadPoolTCPServer):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="minihttp.error"):
            server = cls(("127.0.0.1", 0), Boom)
            with running(server):
                assert stream_roundtrip(socket.AF_INET, server.server_address, b"boom") == b""
                assert stream_roundtrip(socket.AF_INET, server.server_address, b"ok") == b"ok\n"
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, cls
        assert errors[0].name == "minihttp.error"
        assert errors[0].exc_info and errors[0].exc_info[0] is ValueError
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("exc", [BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                                 TimeoutError])
def test_disconnect_errors_are_debug_only(exc: type[BaseException],
                                          caplog: pytest.LogCaptureFixture) -> None:
    class Gone(BaseRequestHandler):
        def handle(self) -> None:
            raise exc("peer went away")

    server = ThreadingTCPServer(("127.0.0.1", 0), Gone)
    with caplog.at_level(logging.DEBUG, logger="minihttp.error"), running(server):
        assert stream_roundtrip(socket.AF_INET, server.server_address, b"x") == b""
    records = [r for r in caplog.records if r.name == "minihttp.error"]
    assert records, "the disconnect was not logged at all"
    assert all(r.levelno == logging.DEBUG and not r.exc_info for r in records)


def test_real_reset_mid_response_is_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    done = threading.Event()

    class Flood(StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            try:
                for _ in range(1000):  # far more than socket buffers hold
                    self.wfile.write(b"x" * 65536)
            finally:
                done.set()

    server = ThreadingTCPServer(("127.0.0.1", 0), Flood)
    with caplog.at_level(logging.DEBUG, logger="minihttp.error"), running(server):
        c = socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT)
        c.sendall(b"go\n")
        c.recv(10)
        # Abortive close (RST): the handler's next send fails.
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        assert done.wait(CLIENT_TIMEOUT)
    records = [r for r in caplog.records if r.name == "minihttp.error"]
    assert records and all(r.levelno == logging.DEBUG for r in records)


def test_verify_request_false_closes_the_connection() -> None:
    seen: list[Any] = []

    class Refuse(ThreadingTCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            seen.append(request)
            return False

    server = Refuse(("127.0.0.1", 0), LineEcho)
    with running(server):
        assert stream_roundtrip(socket.AF_INET, server.server_address, b"x") == b""  # EOF
    assert len(seen) == 1 and seen[0].fileno() == -1


@pytest.mark.parametrize("where", ["verify_request", "process_request"])
def test_exceptions_in_dispatch_close_the_request(where: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    def broken(self: Any, request: Any, client_address: Any) -> bool:
        seen.append(request)
        raise RuntimeError(where)

    cls = type("Broken", (TCPServer,), {where: broken})
    server = cls(("127.0.0.1", 0), LineEcho)
    with caplog.at_level(logging.ERROR, logger="minihttp.error"), running(server):
        for _ in range(2):  # and the loop survives
            assert stream_roundtrip(socket.AF_INET, server.server_address, b"x") == b""
    assert len(seen) == 2 and all(s.fileno() == -1 for s in seen)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_handle_request_timeout_calls_handle_timeout() -> None:
    class Timed(TCPServer):
        timeout = 0.05
        timeouts = 0

        def handle_timeout(self) -> None:
            self.timeouts += 1

    with Timed(("127.0.0.1", 0), LineEcho) as server:
        server.handle_request()
        assert server.timeouts == 1
        with socket.create_connection(server.server_address, timeout=CLIENT_TIMEOUT) as c:
            c.sendall(b"hi\n")
            server.handle_request()
            assert recv_line(c) == b"hi\n"
        assert server.timeouts == 1


def test_handle_request_uses_the_socket_timeout_too() -> None:
    class Timed(TCPServer):
        timeouts = 0

        def handle_timeout(self) -> None:
            self.timeouts += 1

    with Timed(("127.0.0.1", 0), LineEcho) as server:
        server.socket.settimeout(0.05)
        server.handle_request()
        assert server.timeouts == 1


def test_bind_and_activate_false() -> None:
    server = TCPServer(("127.0.0.1", 0), LineEcho, bind_and_activate=False)
    with server:
        assert server.server_address == ("127.0.0.1", 0)
        server.allow_reuse_address = True
        server.server_bind()
        assert server.server_address[1] != 0
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        server.server_activate()
        with running(server):
            assert stream_roundtrip(socket.AF_INET, server.server_address, b"a") == b"a\n"


def test_failed_bind_closes_the_socket() -> None:
    with TCPServer(("127.0.0.1", 0), LineEcho) as first:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError):
            TCPServer(first.server_address, LineEcho)
        assert len(os.listdir("/proc/self/fd")) == before


def test_context_manager_closes() -> None:
    with TCPServer(("127.0.0.1", 0), LineEcho) as server:
        assert server.fileno() >= 0
    assert server.socket.fileno() == -1


def test_allow_reuse_port() -> None:
    class Shared(TCPServer):
        allow_reuse_port = True

    with Shared(("127.0.0.1", 0), LineEcho) as a, Shared(a.server_address, LineEcho) as b:
        assert a.server_address == b.server_address
        assert b.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    with TCPServer(("127.0.0.1", 0), LineEcho) as c, pytest.raises(OSError):
        TCPServer(c.server_address, LineEcho)


def test_ipv6_server_if_available() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    class V6(TCPServer):
        address_family = socket.AF_INET6

    try:
        server = V6(("::1", 0), LineEcho)
    except OSError:
        pytest.skip("::1 not configured")
    with running(server):
        assert stream_roundtrip(socket.AF_INET6, server.server_address[:2], b"6") == b"6\n"


# -- handlers -----------------------------------------------------------------------------------


def test_handler_lifecycle_runs_finish_even_when_handle_raises() -> None:
    calls: list[str] = []

    class H(BaseRequestHandler):
        def setup(self) -> None:
            calls.append("setup")

        def handle(self) -> None:
            calls.append("handle")
            raise KeyError("x")

        def finish(self) -> None:
            calls.append("finish")

    with pytest.raises(KeyError):
        H("req", ("a", 1), "srv")
    assert calls == ["setup", "handle", "finish"]


def test_stream_handler_options() -> None:
    seen: dict[str, Any] = {}

    class H(StreamRequestHandler):
        timeout = 5.0
        disable_nagle_algorithm = True
        rbufsize = 0

        def handle(self) -> None:
            seen["timeout"] = self.connection.gettimeout()
            seen["nodelay"] = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            seen["wfile"] = type(self.wfile).__name__
            seen["written"] = self.wfile.write(memoryview(b"abc\n"))

    server = TCPServer(("127.0.0.1", 0), H)
    with running(server):
        assert stream_roundtrip(socket.AF_INET, server.server_address, b"") == b"abc\n"
    assert seen == {"timeout": 5.0, "nodelay": 1, "wfile": "SocketWriter", "written": 4}


def test_nagle_option_is_ignored_on_unix_sockets(sockdir: Path) -> None:
    class H(LineEcho):
        disable_nagle_algorithm = True

    server = UnixStreamServer(str(sockdir / "n.sock"), H)
    with running(server):
        assert stream_roundtrip(socket.AF_UNIX, server.server_address, b"u") == b"u\n"


def test_buffered_wfile_is_flushed_by_finish() -> None:
    class H(StreamRequestHandler):
        wbufsize = 65536

        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())  # stays in the buffer until finish()

    server = TCPServer(("127.0.0.1", 0), H)
    with running(server):
        assert stream_roundtrip(socket.AF_INET, server.server_address, b"buf") == b"buf\n"


def test_unbuffered_write_is_complete_even_when_signals_interrupt_it() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    size = 8 * 1024 * 1024
    results: dict[str, Any] = {}

    class Big(StreamRequestHandler):
        def handle(self) -> None:
            results["written"] = self.wfile.write(b"y" * size)

    def late_reader(address: Any) -> None:
        total = 0
        with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as c:
            time.sleep(0.2)  # the server's send fills the socket buffers and blocks first
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while total < size and time.monotonic() < deadline:
                chunk = c.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
        results["received"] = total

    ticks = [0]

    def on_alarm(signum: int, frame: Any) -> None:
        ticks[0] += 1

    old = signal.signal(signal.SIGALRM, on_alarm)
    with TCPServer(("127.0.0.1", 0), Big) as server:
        reader = threading.Thread(target=late_reader, args=(server.server_address,), daemon=True)
        reader.start()
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
        try:
            server.handle_request()  # the write runs on this (main) thread
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        reader.join(CLIENT_TIMEOUT)
    assert ticks[0] > 0, "no signal arrived during the write"
    assert results == {"written": size, "received": size}


def test_udp_request_shape() -> None:
    seen: list[Any] = []

    class H(BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            seen.append((data, sock is self.server.socket))
            sock.sendto(b"ok", self.client_address)

    server = UDPServer(("127.0.0.1", 0), H)
    with running(server):
        assert datagram_roundtrip(socket.AF_INET, server.server_address, b"p", None) == b"ok"
    assert seen == [(b"p", True)]


def test_forking_children_are_collected_and_bounded() -> None:
    class Forker(mss.ForkingTCPServer):
        max_children = 2

    server = Forker(("127.0.0.1", 0), LineEcho)
    with running(server):
        for i in range(6):
            assert stream_roundtrip(socket.AF_INET, server.server_address, b"%d" % i) == b"%d\n" % i
            assert len(server.active_children or ()) <= 2
    assert not server.active_children


CPYTHON_SUITE = """
import sys, unittest
import minihttp.socketserver as ours
sys.modules["socketserver"] = ours          # the stdlib's own tests, run against our module
from test import test_socketserver as t
assert t.socketserver is ours
suite = unittest.defaultTestLoader.loadTestsFromModule(t)
# test_all compares __all__ with the stdlib's exactly; ours adds the pool names on purpose
# (test_all_matches_stdlib_plus_our_additions covers it).
def keep(test):
    return not test.id().endswith("MiscTestCase.test_all")
def flatten(s):
    for x in s:
        yield from (flatten(x) if isinstance(x, unittest.TestSuite) else [x])
suite = unittest.TestSuite(t for t in flatten(suite) if keep(t))
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
print("RAN", result.testsRun)
sys.exit(0 if result.wasSuccessful() else 1)
"""


def test_cpython_socketserver_suite_passes_against_our_module() -> None:
    import importlib.util

    if importlib.util.find_spec("test.test_socketserver") is None:
        pytest.skip("CPython's test package is not installed")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", CPYTHON_SUITE], cwd=root, capture_output=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:] + proc.stderr.decode(errors="replace")[-3000:]
    assert "RAN " in out and int(out.rsplit("RAN ", 1)[1].split()[0]) >= 20
