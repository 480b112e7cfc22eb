"""nginx from Debian in front of minihttp, for the tests that put it there: its path, the
skip when it is missing, a configuration prologue and a started-and-stopped process.

Every wait is bounded; nginx runs in the foreground with one worker, its files in the test's
temporary directory, on a loopback port chosen here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import stop_process

NGINX = "/usr/sbin/nginx"
REPO = Path(__file__).resolve().parents[2]

#: ``pytestmark = needs_nginx`` in a module whose tests all need it.
needs_nginx = pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                 reason=f"nginx not installed at {NGINX} (apt install nginx-light)")

#: What every test's nginx.conf starts with (str.format fields: user, tmp); the ``http``
#: block stays open for the test's own ``upstream`` and ``server`` blocks.
PROLOGUE = """\
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
"""


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env() -> dict[str, str]:
    """The environment for a ``python -m minihttp`` child: this checkout first on the path,
    output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def running_nginx(tmp_path: Path, servers: str, **fields: object) -> Iterator[int]:
    """nginx with :data:`PROLOGUE` + ``servers`` (the rest of the ``http`` block, a
    str.format template given ``port``, ``tmp`` and ``fields``); yields the port it listens
    on once it accepts, and stops it (SIGQUIT, then kill) on exit."""
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text((PROLOGUE + servers + "}}\n").format(
        user="user root;" if os.geteuid() == 0 else "", tmp=tmp_path, port=port, **fields))
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert nginx.poll() is None, nginx.communicate()[1]
            assert time.monotonic() < deadline, "nginx did not start in time"
            time.sleep(0.05)
        yield port
    finally:
        stop_process(nginx, signal.SIGQUIT)  # graceful: workers finish what they serve
        if nginx.stderr is not None:
            nginx.stderr.close()
