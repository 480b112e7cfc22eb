"""The README's recipe: nginx in front of ``python -m minihttp wsgi`` over a Unix socket.

nginx listens on a loopback port and proxies to the app's ``--unix`` socket with the
README's headers; the app trusts 127.0.0.1 (what a Unix-socket peer counts as). The test
client connects from 127.0.0.3 so that its address differs from the trusted one: the app
must see 127.0.0.3 (not the forged left-most entry the client sends) and the scheme nginx
sets (not the one the client forged). Every process is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.nginx import needs_nginx, running_nginx, subprocess_env
from tests.helpers.processes import stop_process

CLIENT = "127.0.0.3"

pytestmark = needs_nginx

APP = """
    import os
    def application(environ, start_response):
        body = "|".join([environ["REMOTE_ADDR"], environ["wsgi.url_scheme"],
                         environ["HTTP_HOST"], environ["PATH_INFO"], str(os.getpid())])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode("latin-1")]  # PATH_INFO holds the bytes as latin-1
"""

SERVERS = """\

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
"""


@contextlib.contextmanager
def recipe(tmp_path: Path) -> Iterator[int]:
    """The app (2 workers) on a Unix socket behind nginx; yields nginx's port."""
    (tmp_path / "site_app.py").write_text(textwrap.dedent(APP))
    sock = tmp_path / "app.sock"
    app = None
    try:
        app = subprocess.Popen(
            [sys.executable, "-m", "minihttp", "wsgi", "site_app", "--unix", str(sock),
             "--workers", "2", "--forwarded-allow-ips", "127.0.0.1", "-q"],
            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert app.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(app.stdout, selectors.EVENT_READ)
            assert sel.select(10), "the app did not start in time"
        assert f"on unix:{sock} " in app.stdout.readline()
        with running_nginx(tmp_path, SERVERS, sock=sock) as port:
            yield port
    finally:
        if app is not None:
            stop_process(app)
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
