"""minihttp.socketserver: the bounded worker pool, accept back-pressure, EMFILE survival,
and no threads / children / descriptors left behind after many connections."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from minihttp.socketserver import (
    ForkingTCPServer,
    StreamRequestHandler,
    TCPServer,
    ThreadingTCPServer,
    ThreadPoolTCPServer,
    WorkerPool,
)
from minihttp.socketserver.workers import default_max_workers
from tests.helpers.servers import open_fds, recv_line, running, wait_for

TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parents[2]


class LineEcho(StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def roundtrip(address: Any, payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=TIMEOUT) as c:
        c.sendall(payload + b"\n")
        return recv_line(c, TIMEOUT)


# -- WorkerPool on its own ------------------------------------------------------------------------


def test_pool_runs_every_task_with_bounded_concurrency() -> None:
    lock = threading.Lock()
    active, peak, done = [0], [0], []

    def task(i: int) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.002)
        with lock:
            active[0] -= 1
            done.append(i)

    pool = WorkerPool(max_workers=3, max_queue=2)
    for i in range(40):
        pool.submit(task, i)  # blocks while the queue is full
        assert pool.pending <= 2
    pool.shutdown(wait=True)
    assert sorted(done) == list(range(40))
    assert 1 <= peak[0] <= 3
    assert pool.worker_count == 0


def test_pool_starts_workers_lazily() -> None:
    with WorkerPool(max_workers=8, max_queue=8) as pool:
        assert pool.worker_count == 0
        ran = threading.Event()
        pool.submit(ran.set)
        assert ran.wait(TIMEOUT)
        assert pool.worker_count == 1
        for _ in range(5):  # sequential tasks reuse the idle worker
            ev = threading.Event()
            pool.submit(ev.set)
            assert ev.wait(TIMEOUT)
        assert pool.worker_count == 1


def test_try_submit_refuses_when_full_and_on_space_fires() -> None:
    gate = threading.Event()
    space = threading.Event()
    pool = WorkerPool(max_workers=1, max_queue=1, on_space=space.set)
    started = threading.Event()

    def blocker() -> None:
        started.set()
        gate.wait(TIMEOUT)

    assert pool.try_submit(blocker)
    assert started.wait(TIMEOUT)
    space.clear()  # taking the first task off a (1-slot) full queue already signalled
    assert pool.try_submit(gate.wait, TIMEOUT)  # queued
    assert pool.full()
    assert not pool.try_submit(print, "never")
    assert not space.is_set()
    gate.set()
    assert space.wait(TIMEOUT), "on_space not called when a full queue gained room"
    pool.shutdown(wait=True)
    assert pool.worker_count == 0


def test_try_run_now_refuses_to_queue_behind_busy_workers() -> None:
    """``try_run_now`` runs only on a worker free (or startable) now: a pooled server hands
    its event loop over with it, and a queued loop would stall until a worker finished."""
    gate = threading.Event()
    ran = threading.Event()
    pool = WorkerPool(max_workers=1, max_queue=4)
    started = threading.Event()

    def blocker() -> None:
        started.set()
        gate.wait(TIMEOUT)

    assert pool.try_run_now(blocker)  # room to start the worker
    assert started.wait(TIMEOUT)
    assert not pool.full()
    assert not pool.try_run_now(ran.set)  # try_submit would have queued it
    assert pool.pending == 0
    gate.set()
    deadline = time.monotonic() + TIMEOUT
    while not pool.try_run_now(ran.set) and time.monotonic() < deadline:
        time.sleep(0.01)  # the worker is idle again once blocker returned
    assert ran.wait(TIMEOUT)
    pool.shutdown(wait=True)
    assert not pool.try_run_now(ran.set)  # and never after shutdown


def test_overflow_runs_a_short_task_while_every_worker_blocks() -> None:
    """``max_overflow``: with both workers held, a third task starts on an extra worker at
    once instead of waiting for one of them; the pool never passes max_workers+max_overflow
    and the extra workers exit once idle for ``overflow_idle``."""
    gate = threading.Event()
    started = threading.Semaphore(0)

    def blocker() -> None:
        started.release()
        gate.wait(TIMEOUT)

    pool = WorkerPool(max_workers=2, max_queue=8, max_overflow=1, overflow_idle=0.2)
    try:
        pool.submit(blocker)
        pool.submit(blocker)
        for _ in range(2):
            assert started.acquire(timeout=TIMEOUT)
        quick = threading.Event()
        pool.submit(quick.set)
        assert quick.wait(TIMEOUT), "the short task waited behind the blocked workers"
        assert pool.worker_count == 3
        pool.submit(blocker)  # the overflow worker takes it
        assert started.acquire(timeout=TIMEOUT)
        queued = threading.Event()
        pool.submit(queued.set)  # 3 busy, the reserve used up: it waits in the queue
        assert not queued.wait(0.3)
        assert pool.worker_count == 3 and pool.pending == 1
        gate.set()
        assert queued.wait(TIMEOUT)
        assert wait_for(lambda: pool.worker_count == 2, TIMEOUT), "overflow never exited"
    finally:
        gate.set()
        pool.shutdown(wait=True)
    assert pool.worker_count == 0


def test_pool_shutdown_drains_queue_and_refuses_new_work() -> None:
    gate = threading.Event()
    ran: list[int] = []
    pool = WorkerPool(max_workers=1, max_queue=5)
    pool.submit(gate.wait, TIMEOUT)
    for i in range(5):
        pool.submit(ran.append, i)
    closer = threading.Thread(target=pool.shutdown, daemon=True)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 99)
    gate.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert ran == [0, 1, 2, 3, 4]


def test_pool_task_errors_are_reported_and_workers_survive() -> None:
    errors: list[BaseException] = []
    with WorkerPool(max_workers=1, max_queue=4, on_error=errors.append) as pool:
        pool.submit(int, "not a number")
        ok = threading.Event()
        pool.submit(ok.set)
        assert ok.wait(TIMEOUT)
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_pool_validates_sizes() -> None:
    with pytest.raises(ValueError):
        WorkerPool(max_workers=1, max_overflow=-1)
    with pytest.raises(ValueError):
        WorkerPool(max_workers=1, max_overflow=1, overflow_idle=0)
    with pytest.raises(ValueError):
        WorkerPool(max_workers=0)
    with pytest.raises(ValueError):
        WorkerPool(max_workers=1, max_queue=0)
    assert 8 <= default_max_workers() <= 64


# -- ThreadPoolTCPServer --------------------------------------------------------------------------


def test_pool_server_more_clients_than_workers() -> None:
    """2 workers, queue 2, 20 concurrent clients: all served, never more than 2 handlers at
    once, and never more than workers + queue connections accepted and not yet finished."""
    lock = threading.Lock()
    stats = {"active": 0, "peak": 0, "open": 0, "peak_open": 0, "handler_threads": set()}

    class Counting(StreamRequestHandler):
        def handle(self) -> None:
            with lock:
                stats["active"] += 1
                stats["peak"] = max(stats["peak"], stats["active"])
                stats["handler_threads"].add(threading.current_thread().name)
            try:
                line = self.rfile.readline()
                time.sleep(0.01)
                self.wfile.write(line)
            finally:
                with lock:
                    stats["active"] -= 1

    class Server(ThreadPoolTCPServer):
        max_workers = 2
        max_queue = 2

        def get_request(self) -> tuple[Any, Any]:
            request = super().get_request()
            with lock:
                stats["open"] += 1
                stats["peak_open"] = max(stats["peak_open"], stats["open"])
            return request

        def shutdown_request(self, request: Any) -> None:
            with lock:
                stats["open"] -= 1
            super().shutdown_request(request)

    results: dict[int, bytes] = {}

    def client(i: int) -> None:
        results[i] = roundtrip(server.server_address, b"client %d" % i)

    server = Server(("127.0.0.1", 0), Counting)
    threads_before = threading.active_count()
    with running(server):
        clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(20)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(TIMEOUT * 2)
        assert server.pool.worker_count == 2
    assert results == {i: b"client %d\n" % i for i in range(20)}
    assert stats["peak"] == 2, stats
    assert len(stats["handler_threads"]) == 2
    assert stats["peak_open"] <= 2 + 2, stats  # running + queued; the rest wait in the backlog
    assert stats["open"] == 0
    assert server.pool.worker_count == 0  # server_close joined the workers
    assert wait_for(lambda: threading.active_count() <= threads_before, TIMEOUT)


def test_pool_server_accepts_again_promptly_after_backpressure() -> None:
    """With the queue full the loop stops watching the listening socket; a worker freeing
    room wakes it (not the poll interval, which is one hour here)."""
    gate = threading.Event()

    class Slow(StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            gate.wait(TIMEOUT)
            self.wfile.write(line)

    class Server(ThreadPoolTCPServer):
        max_workers = 1
        max_queue = 1

    server = Server(("127.0.0.1", 0), Slow)
    loop = threading.Thread(target=server.serve_forever, args=(3600,), daemon=True)
    loop.start()
    results: list[bytes] = []
    clients = [threading.Thread(target=lambda i=i: results.append(
        roundtrip(server.server_address, b"%d" % i)), daemon=True) for i in range(4)]
    try:
        for t in clients:
            t.start()
        # (full with the worker held: before the worker takes the first request the queue is
        # briefly full with that one, then has room again)
        assert wait_for(lambda: server.pool.busy == 1 and server.pool.full(), TIMEOUT)
        assert not server.accepting()
        gate.set()
        for t in clients:
            t.join(TIMEOUT)
        assert sorted(results) == [b"0\n", b"1\n", b"2\n", b"3\n"]
    finally:
        gate.set()
        server.shutdown()
        loop.join(TIMEOUT)
        server.server_close()
    assert not loop.is_alive()


def test_pool_server_close_without_block_on_close_returns_while_busy() -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Slow(StreamRequestHandler):
        def handle(self) -> None:
            entered.set()
            gate.wait(TIMEOUT)
            self.wfile.write(b"late\n")

    class Server(ThreadPoolTCPServer):
        block_on_close = False
        max_workers = 1

    server = Server(("127.0.0.1", 0), Slow)
    with socket.create_connection(server.server_address, timeout=TIMEOUT) as c:
        with running(server):
            c.sendall(b"x\n")
            assert entered.wait(TIMEOUT)
        assert server.pool.worker_count == 1  # still finishing, not joined
        gate.set()
        assert c.recv(10) == b"late\n"
    assert wait_for(lambda: server.pool.worker_count == 0, TIMEOUT)


# -- running out of descriptors --------------------------------------------------------------------


def test_accept_survives_emfile_simulated(caplog: pytest.LogCaptureFixture) -> None:
    class Starved(TCPServer):
        failures = 5
        attempts = 0

        def get_request(self) -> tuple[Any, Any]:
            self.attempts += 1
            if self.failures:
                self.failures -= 1
                # The connection stays in the backlog, as with a real EMFILE.
                raise OSError(errno.EMFILE, "Too many open files")
            return super().get_request()

    server = Starved(("127.0.0.1", 0), LineEcho)
    server.accept_backoff = 0.02
    with caplog.at_level(logging.DEBUG, logger="minihttp.error"), running(server):
        assert roundtrip(server.server_address, b"survived") == b"survived\n"
        assert roundtrip(server.server_address, b"again") == b"again\n"
    assert server.attempts == 7  # backed off between attempts, no busy loop
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "accept" in warnings[0].getMessage()
    assert warnings[0].name == "minihttp.error"


def test_other_accept_errors_are_ignored_quietly(caplog: pytest.LogCaptureFixture) -> None:
    class Aborted(TCPServer):
        failed = False

        def get_request(self) -> tuple[Any, Any]:
            if not self.failed:
                self.failed = True
                raise ConnectionAbortedError(errno.ECONNABORTED, "aborted")
            return super().get_request()

    server = Aborted(("127.0.0.1", 0), LineEcho)
    with caplog.at_level(logging.WARNING, logger="minihttp.error"), running(server):
        assert roundtrip(server.server_address, b"ok") == b"ok\n"
    assert not caplog.records


EMFILE_SCRIPT = textwrap.dedent("""
    import logging, os, resource, sys, threading
    from minihttp.socketserver import ThreadingTCPServer, StreamRequestHandler

    class Echo(StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    server = ThreadingTCPServer(("127.0.0.1", 0), Echo)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    loop.start()
    import socket
    with socket.create_connection(server.server_address, timeout=10) as probe:
        probe.sendall(b"ready\\n")    # an echo proves the loop runs before descriptors go
        reply = b""
        while chunk := probe.recv(100):  # until EOF: the server closed its side too
            reply += chunk
        assert reply == b"ready\\n"
    import time
    hog = []
    for _ in range(2):               # twice: a descriptor the handler thread frees late
        try:                         # must not give accept() a free slot after all
            while True:
                hog.append(os.dup(0))
        except OSError:
            pass
        time.sleep(0.2)
    print(server.server_address[1], flush=True)
    sys.stdin.readline()           # the test has seen the warning: give descriptors back
    for fd in hog:
        os.close(fd)
    sys.stdin.readline()           # the client got its answer
    server.shutdown()
    loop.join(10)
    server.server_close()
    print("clean" if not loop.is_alive() else "stuck", flush=True)
""")


def test_accept_survives_real_emfile() -> None:
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SCRIPT], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "the server did not start"
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
            c.sendall(b"patience\n")
            ready, _, _ = select.select([proc.stderr], [], [], TIMEOUT)
            assert ready, "no warning about accept() failing"
            warning = proc.stderr.readline().decode()
            assert warning.startswith("WARNING") and "accept" in warning
            proc.stdin.write(b"\n")
            proc.stdin.flush()
            assert c.recv(100) == b"patience\n"
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=TIMEOUT)
        assert out.strip() == b"clean"
        assert b"Traceback" not in err
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- nothing left behind ---------------------------------------------------------------------------


def hammer(address: Any, total: int, concurrency: int) -> list[bytes]:
    answers: list[bytes] = []
    lock = threading.Lock()
    per_client = total // concurrency

    def client(k: int) -> None:
        for i in range(per_client):
            got = roundtrip(address, b"%d-%d" % (k, i))
            with lock:
                answers.append(got)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


@pytest.mark.parametrize("cls", [ThreadingTCPServer, ThreadPoolTCPServer, TCPServer])
def test_no_threads_or_fds_left_after_1000_connections(cls: type) -> None:
    fds_before = open_fds()
    threads_before = {t.ident for t in threading.enumerate()}
    server = cls(("127.0.0.1", 0), LineEcho)
    with running(server):
        answers = hammer(server.server_address, 1000, 4)
        if cls is ThreadingTCPServer:
            # Finished threads are reaped as they go, not kept in a growing list.
            assert wait_for(lambda: len(server._threads) == 0, TIMEOUT)
    assert len(answers) == 1000 and all(a.endswith(b"\n") for a in answers)
    assert wait_for(lambda: {t.ident for t in threading.enumerate()} <= threads_before,
                    TIMEOUT), threading.enumerate()
    assert wait_for(lambda: open_fds() == fds_before, TIMEOUT), (open_fds(), fds_before)


def test_no_children_or_fds_left_after_forking_run() -> None:
    fds_before = open_fds()
    server = ForkingTCPServer(("127.0.0.1", 0), LineEcho)
    with running(server):
        answers = hammer(server.server_address, 100, 2)
    assert len(answers) == 100
    assert not server.active_children
    assert open_fds() == fds_before


@pytest.mark.slow
def test_soak_pool_server_10000_connections() -> None:
    fds_before = open_fds()
    server = ThreadPoolTCPServer(("127.0.0.1", 0), LineEcho)
    with running(server):
        answers = hammer(server.server_address, 10000, 16)
    assert len(answers) == 10000
    assert wait_for(lambda: open_fds() == fds_before, TIMEOUT)
