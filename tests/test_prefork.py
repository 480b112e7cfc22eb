"""``python -m minihttp --workers N``: pre-forked, supervised workers (real processes).

Worker pids are read from the access log (``[pid] ...`` in worker mode) and from /proc
(children of the supervisor). Every wait is bounded; every process is SIGKILLed in finally.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import wait_for

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _alive(pid: int) -> bool:
    """Running (a zombie of some other parent counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


class Server:
    """A running ``python -m minihttp --workers`` with its stderr collected by a thread
    (``pause`` seconds after each read of at most 4 KiB: a slow reader keeps the pipe full)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, pause: float = 0.0) -> None:
        self.proc, self.port, self.pause = proc, port, pause
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while data := os.read(fd, 4096 if self.pause else 65536):
            self.chunks.append(data)
            if self.pause:
                time.sleep(self.pause)

    def stderr(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def get(self, path: str = "/a.txt") -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def serving_pids(self) -> set[int]:
        return {int(m) for m in re.findall(r"^\[(\d+)\] 127\.0\.0\.1 - - ", self.stderr(), re.M)}

    def workers(self) -> set[int]:
        return _children(self.proc.pid)


@contextlib.contextmanager
def prefork_server(site: Path, *extra: str, pause: float = 0.0) -> Iterator[Server]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "minihttp", "0", "-b", "127.0.0.1", "-d", str(site),
         "--workers", "2", "--graceful-timeout", "5", *extra],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(10), "no 'Serving' line in time"
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        server = Server(proc, int(m.group(1)), pause)
        assert wait_for(lambda: len(server.workers()) == 2, 10.0)
        seen |= server.workers()
        yield server
        seen |= server.workers()
    finally:
        seen |= _children(proc.pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("hello\n")
    return tmp_path


def _spread(server: Server) -> set[int]:
    """Fresh connections, a few at a time, until two workers have served (bounded)."""
    deadline = time.monotonic() + 15
    for _ in range(100):
        threads = [threading.Thread(target=server.get) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        pids = server.serving_pids()
        if len(pids) >= 2 or time.monotonic() > deadline:
            return pids
    return server.serving_pids()


def _stop(server: Server, workers: set[int]) -> None:
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert wait_for(lambda: not any(_alive(p) for p in workers), 10.0)
    assert "Traceback" not in server.stderr()


def test_two_workers_serve_then_sigterm_drains(site: Path) -> None:
    with prefork_server(site) as server:
        workers = server.workers()
        assert server.get() == (200, b"hello\n")
        pids = _spread(server)
        assert len(pids) == 2, server.stderr()
        assert pids == workers  # the supervisor itself serves nothing
        _stop(server, workers)
        text = server.stderr()
        assert "SIGTERM: draining 2 workers" in text
        assert text.count("stopped (exit status 0)") == 2, text


def test_killed_worker_is_replaced(site: Path) -> None:
    with prefork_server(site) as server:
        old = server.workers()
        victim = min(old)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(w := server.workers()) == 2 and victim not in w, 10.0)
        now = server.workers()  # settled: two workers, the victim replaced
        assert len(now) == 2 and victim not in now
        assert len(now & old) == 1
        for _ in range(5):
            assert server.get()[0] == 200
        assert f"(pid {victim}) died (killed by SIGKILL)" in server.stderr()
        _stop(server, now)


def test_sighup_replaces_workers_gracefully(site: Path) -> None:
    with prefork_server(site) as server:
        old = server.workers()
        server.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(w := server.workers()) == 2 and not (w & old), 10.0)
        new = server.workers()  # settled: two new workers
        assert len(new) == 2 and not (new & old)
        assert wait_for(lambda: not any(_alive(p) for p in old), 10.0)
        assert server.get()[0] == 200
        assert "SIGHUP: starting 2 new workers, draining 2 old" in server.stderr()
        _stop(server, new)


def test_workers_die_with_the_supervisor(site: Path) -> None:
    with prefork_server(site) as server:
        workers = server.workers()
        server.proc.kill()  # no chance to clean up: PR_SET_PDEATHSIG must do it
        server.proc.wait(10)
        assert wait_for(lambda: not any(_alive(p) for p in workers), 10.0)


def test_forwarded_allow_ips_in_worker_log(site: Path) -> None:
    with prefork_server(site, "--forwarded-allow-ips", "127.0.0.1") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/a.txt", headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.77"})
            assert conn.getresponse().read() == b"hello\n"
        finally:
            conn.close()
        assert wait_for(lambda: "] 192.0.2.77 - - " in server.stderr(), 10.0), server.stderr()
        assert "6.6.6.6" not in server.stderr()
        _stop(server, server.workers())


CRASHER = textwrap.dedent("""
    import logging, os, signal, sys, threading
    from minihttp.prefork import Supervisor
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    sys.exit(Supervisor(lambda: 3, 1, graceful_timeout=2).run())
""")


def test_crash_loop_backs_off() -> None:
    """A worker that exits at once is restarted after 0.1, 0.2, 0.4, 0.8 s: a handful of
    starts in 1.5 s, not hundreds."""
    result = subprocess.run([sys.executable, "-c", CRASHER], env=_env(), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    starts = result.stderr.count("worker 0 started")
    assert 2 <= starts <= 8, result.stderr
    assert "died (exit status 3); restarting in 0.2 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_open_file_limit_raised() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or hard == resource.RLIM_INFINITY:
        lowered = max(64, hard // 2) if hard != resource.RLIM_INFINITY else 256
        if hard == resource.RLIM_INFINITY:
            pytest.skip("hard limit is unlimited: nothing to raise to")
    else:
        lowered = soft
    script = ("import resource, logging, sys; from minihttp import cli; "
              "logging.basicConfig(level=logging.INFO, format='%(message)s'); "
              f"resource.setrlimit(resource.RLIMIT_NOFILE, ({lowered}, {hard})); "
              "print(cli.raise_open_file_limit()); "
              "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    result = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True,
                            text=True, timeout=20)
    if lowered == hard:
        pytest.skip("soft limit already at the hard limit")
    assert result.stdout.split() == [f"({lowered},", f"{hard})", str(hard)], result
    assert f"raised open-file limit from {lowered} to {hard}" in result.stderr


def test_access_lines_of_two_workers_on_one_stderr_never_interleave(site: Path) -> None:
    """Both workers write their batched access lines to the one stderr pipe, which a slow
    reader keeps full: every line arrives whole (each write() holds whole lines, at most
    PIPE_BUF bytes), none is lost, none twice."""
    clients, per_client, per_connection = 8, 250, 25
    with prefork_server(site, pause=0.05) as server:
        def client(c: int) -> None:
            for start in range(0, per_client, per_connection):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                try:
                    for i in range(start, start + per_connection):
                        conn.request("GET", f"/a.txt?n={c}-{i}")
                        resp = conn.getresponse()
                        assert resp.status == 200 and resp.read() == b"hello\n"
                finally:
                    conn.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        _stop(server, server.workers())
        server._reader.join(10)
    access = [line for line in server.stderr().splitlines() if "GET /a.txt?n=" in line]
    pattern = re.compile(r'\[(\d+)\] 127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] '
                         r'"GET /a\.txt\?n=(\d+-\d+) HTTP/1\.1" 200 6')
    matches = [pattern.fullmatch(line) for line in access]
    assert all(matches), [line for line, m in zip(access, matches, strict=True) if not m][:3]
    assert sorted(m.group(2) for m in matches if m) == sorted(
        f"{c}-{i}" for c in range(clients) for i in range(per_client))
    assert len({m.group(1) for m in matches if m}) == 2  # both workers wrote
