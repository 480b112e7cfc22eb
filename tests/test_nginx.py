"""Behind a real load balancer: nginx balancing two ``python -m minihttp`` processes.

Checks that both backends serve, that the access log names the client nginx saw (not a
forged left-most X-Forwarded-For entry), and that SIGKILLing one backend in the middle of a
run of sequential GETs loses none of them (nginx retries on the other, as configured).

To tell the proxy from the client on one machine, nginx connects to the backends from
127.0.0.2 (``proxy_bind``) and only 127.0.0.2 is trusted; the test client is 127.0.0.1.
Everything runs on loopback ports chosen by the kernel; every process is stopped in finally.
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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.nginx import needs_nginx, running_nginx, subprocess_env

PROXY = "127.0.0.2"  # nginx's source address towards the backends (the trusted proxy)

pytestmark = needs_nginx

SERVERS = """\

    upstream minihttp {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://minihttp;
            proxy_bind 127.0.0.2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 2s;
            proxy_read_timeout 10s;
        }}
    }}
"""


class Backend:
    """``python -m minihttp PORT --forwarded-allow-ips 127.0.0.2`` with stderr collected."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minihttp", "0", "-b", "127.0.0.1", "-d", str(directory),
             "--forwarded-allow-ips", PROXY],
            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(10), "backend did not start in time"
        m = re.search(r":(\d+)/", self.proc.stdout.readline())
        assert m
        self.port = int(m.group(1))
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@contextlib.contextmanager
def balanced(tmp_path: Path) -> Iterator[tuple[int, list[Backend]]]:
    backends: list[Backend] = []
    try:
        for name in ("a", "b"):
            site = tmp_path / name
            site.mkdir()
            (site / "who.txt").write_text(f"backend {name}\n")
            backends.append(Backend(site))
        with running_nginx(tmp_path, SERVERS, port_a=backends[0].port,
                           port_b=backends[1].port) as port:
            yield port, backends
    finally:
        for backend in backends:
            backend.stop()


def _get(conn: http.client.HTTPConnection, path: str,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def _logged(backends: list[Backend], count: int) -> list[str]:
    """The access-log lines of GET /who.txt once ``count`` are there (bounded wait)."""
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for b in backends for line in b.lines if '"GET /who.txt' in line]
        if len(lines) >= count:
            break
        time.sleep(0.05)
    return lines


def test_both_serve_and_client_address_is_the_one_nginx_saw(tmp_path: Path) -> None:
    with balanced(tmp_path) as (port, backends):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            bodies = []
            for _ in range(6):  # round robin
                # A forged left-most entry: nginx appends the real peer (127.0.0.1) after it.
                status, body = _get(conn, "/who.txt", {"X-Forwarded-For": "6.6.6.6"})
                assert status == 200
                bodies.append(body)
            assert set(bodies) == {b"backend a\n", b"backend b\n"}
        finally:
            conn.close()
        lines = _logged(backends, 6)
        assert len(lines) == 6, lines
        assert all(line.startswith("127.0.0.1 - - [") for line in lines), lines
        assert not any("6.6.6.6" in line for b in backends for line in b.lines)


def test_header_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    """A client that bypasses nginx (peer 127.0.0.1, not trusted) cannot set its address."""
    with balanced(tmp_path) as (_port, backends):
        conn = http.client.HTTPConnection("127.0.0.1", backends[0].port, timeout=10)
        try:
            assert _get(conn, "/who.txt", {"X-Forwarded-For": "192.0.2.10"}) == (
                200, b"backend a\n")
        finally:
            conn.close()
        lines = _logged(backends, 1)
        assert len(lines) == 1 and lines[0].startswith("127.0.0.1 - - ["), lines


def test_killing_one_backend_loses_no_request(tmp_path: Path) -> None:
    with balanced(tmp_path) as (port, backends):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        statuses: list[int] = []
        seen: set[bytes] = set()
        try:
            for i in range(200):
                if i == 50:
                    os.kill(backends[0].proc.pid, signal.SIGKILL)
                    backends[0].proc.wait(5)
                status, body = _get(conn, "/who.txt")
                statuses.append(status)
                if i > 50:
                    seen.add(body)
        finally:
            conn.close()
        assert statuses == [200] * 200
        assert seen == {b"backend b\n"}
        for line in backends[1].lines:
            assert "Traceback" not in line
