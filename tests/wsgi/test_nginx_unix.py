"""The README's recipe: nginx in front of ``python -m minihttp wsgi`` over a Unix socket.

nginx listens on a loopback port and proxies to the app's ``--unix`` socket with the
README's headers; the app trusts 127.0.0.1 (what a Unix-socket peer counts as). The test
client connects from 127.0.0.3 so that its address differs from the trusted one: the app
must see 127.0.0.3 (not the forged left-most entry the client sends) and the scheme nginx
sets (not the one the client forged). Every process is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NGINX = "/usr/sbin/nginx"
REPO = Path(__file__).resolve().parents[2]
CLIENT = "127.0.0.3"

pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                reason=f"nginx not installed at {NGINX} (apt install nginx-light)")

APP = """
    import os
    def application(environ, start_response):
        body = "|".join([environ["REMOTE_ADDR"], environ["wsgi.url_scheme"],
                         environ["HTTP_HOST"], environ["PATH_INFO"], str(os.getpid())])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode("latin-1")]  # PATH_INFO holds the bytes as latin-1
"""

CONFIG = """\
{user}
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_temp;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;

    upstream app {{
        server unix:{sock};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def recipe(tmp_path: Path) -> Iterator[int]:
    """The app (2 workers) on a Unix socket behind nginx; yields nginx's port."""
    (tmp_path / "site_app.py").write_text(textwrap.dedent(APP))
    sock = tmp_path / "app.sock"
    app = nginx = None
    try:
        app = subprocess.Popen(
            [sys.executable, "-m", "minihttp", "wsgi", "site_app", "--unix", str(sock),
             "--workers", "2", "--forwarded-allow-ips", "127.0.0.1", "-q"],
            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert app.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(app.stdout, selectors.EVENT_READ)
            assert sel.select(10), "the app did not start in time"
        assert f"on unix:{sock} " in app.stdout.readline()
        port = _free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(CONFIG.format(user="user root;" if os.geteuid() == 0 else "",
                                      tmp=tmp_path, port=port, sock=sock))
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert nginx.poll() is None, "nginx exited"
            assert time.monotonic() < deadline, "nginx did not start in time"
            time.sleep(0.05)
        yield port
    finally:
        for proc, sig in ((nginx, signal.SIGQUIT), (app, signal.SIGTERM)):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if app is not None and app.stdout is not None:
            app.stdout.close()


def _get(port: int, path: str, headers: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(CLIENT, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: example.org\r\n{headers}"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        for _ in range(1000):
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    return data


def test_nginx_in_front_over_a_unix_socket(tmp_path: Path) -> None:
    with recipe(tmp_path) as port:
        pids = set()
        for _ in range(6):
            response = _get(port, "/caf%C3%A9",
                            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n")
            assert response.startswith(b"HTTP/1.1 200 OK"), response[:200]
            remote, scheme, host, path, pid = response.split(b"\r\n\r\n", 1)[1].split(b"|")
            assert remote == CLIENT.encode()  # not the forged 6.6.6.6
            assert scheme == b"http"  # nginx's $scheme, not the client's forged https
            assert host == b"example.org"
            assert path == "/café".encode()
            pids.add(pid)
    assert pids  # (which of the 2 workers answered is the kernel's choice)
    assert not (tmp_path / "app.sock").exists()  # removed when the supervisor stopped
