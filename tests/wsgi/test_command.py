"""``python -m minihttp wsgi`` and ``python -m minihttp run``: real subprocesses on loopback.

Each server is started with a bounded wait for its "Serving ..." line and always killed in
a ``finally`` if it did not exit by itself. Applications live in a temporary directory that
is the subprocess's current directory (importable, as the command promises).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.servers import wait_for

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0

APPS = {
    "hello_wsgi.py": """
        import os
        def application(environ, start_response):
            body = ("%s %s %s %s %s" % (environ["SCRIPT_NAME"], environ["PATH_INFO"],
                    environ["REMOTE_ADDR"], environ["wsgi.url_scheme"],
                    environ["wsgi.multiprocess"])).encode()
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-Pid", str(os.getpid()))])
            return [body]
        def create(greeting="hi"):
            def app(environ, start_response):
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [greeting.encode()]
            return app
        NUMBER = 7
    """,
    "hello_handler.py": """
        from minihttp.server import BaseHTTPRequestHandler
        class Hello(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = b"handler " + self.path.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
    """,
    "stdlib_handler.py": """
        import http.server
        class Old(http.server.BaseHTTPRequestHandler):
            pass
    """,
    "broken_syntax.py": "def app(:\n",
    "raises_at_import.py": "raise RuntimeError('DATABASE_URL is not set')\n",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    for name, source in APPS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    return tmp_path


def _readline(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(TIMEOUT):
            raise AssertionError("no output from the server in time")
    return proc.stdout.readline()


@contextlib.contextmanager
def command(cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m minihttp ARGS`` in ``cwd``; yield (process, base URL) once it serves."""
    proc = subprocess.Popen([sys.executable, "-m", "minihttp", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _readline(proc)
        m = re.search(r" on (https?://\S+:\d+/) \(", line)
        if m is None:
            proc.kill()
            _out, err = proc.communicate(timeout=TIMEOUT)
            raise AssertionError(f"unexpected first line {line!r}; stderr: {err}")
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minihttp", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=30)


def test_wsgi_app_from_the_current_directory(apps: Path) -> None:
    with command(apps, "wsgi", "hello_wsgi:application", "0") as (proc, url):
        assert url.startswith("http://127.0.0.1:")  # an app server binds loopback by default
        r = requests.get(url + "some/path", timeout=5)
        assert r.text == " /some/path 127.0.0.1 http False"
        code, err = stop(proc)
    assert code == 0
    assert '"GET /some/path HTTP/1.1" 200' in err  # the access log


def test_wsgi_factory_with_arguments(apps: Path) -> None:
    with command(apps, "wsgi", "hello_wsgi:create('bonjour')", "0") as (proc, url):
        assert requests.get(url, timeout=5).text == "bonjour"
        assert stop(proc)[0] == 0


def test_wsgi_root_path_and_trusted_proxy(apps: Path) -> None:
    with command(apps, "wsgi", "hello_wsgi", "0", "--root-path", "/app",
                 "--forwarded-allow-ips", "127.0.0.1", "-q") as (proc, url):
        r = requests.get(url + "app/x", timeout=5,
                         headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
        assert r.text == "/app /x 203.0.113.9 https False"
        assert requests.get(url + "x", timeout=5).status_code == 404
        assert stop(proc)[0] == 0


def test_wsgi_workers_share_the_port_and_drain(apps: Path) -> None:
    with command(apps, "wsgi", "hello_wsgi", "0", "--workers", "2", "-q") as (proc, url):
        pids = set()

        def two_pids() -> bool:
            r = requests.get(url + "p", timeout=5)  # a new connection: any worker may take it
            assert r.text.endswith(" True")  # wsgi.multiprocess
            pids.add(r.headers["X-Pid"])
            return len(pids) == 2

        assert wait_for(two_pids, 20, 0.01)
        code, _err = stop(proc)
    assert code == 0


def test_wsgi_over_tls(apps: Path, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, ca_file = tmp_path / "cert.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with command(apps, "wsgi", "hello_wsgi", "0", "--tls-cert", str(cert_file),
                 "-q") as (proc, url):
        assert url.startswith("https://")
        r = requests.get(url + "s", timeout=5, verify=str(ca_file))
        assert r.text.endswith(" https False")
        assert stop(proc)[0] == 0


def test_run_a_handler_class(apps: Path) -> None:
    with command(apps, "run", "hello_handler:Hello", "0") as (proc, url):
        assert requests.get(url + "x?y", timeout=5).text == "handler /x?y"
        assert stop(proc)[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("wsgi", "no_such_module:app"), "error: module 'no_such_module' not found"),
    (("wsgi", "hello_wsgi:nope"), "error: 'hello_wsgi' has no attribute 'nope'"),
    (("wsgi", "hello_wsgi:NUMBER"), "error: 'hello_wsgi:NUMBER' is not a WSGI application: "
                                    "not callable (it is a int)"),
    (("wsgi", "broken_syntax:app"), "error: syntax error in "),
    (("wsgi", "raises_at_import:app"), "error: importing 'raises_at_import' failed: "
                                       "RuntimeError: DATABASE_URL is not set"),
    (("wsgi", "hello_wsgi", "--root-path", "app"), "root path must start with '/'"),
    (("run", "hello_wsgi:application"), "is not a class (it is a function)"),
    (("run", "stdlib_handler:Old"), "import it from minihttp.server instead"),
    (("run", "hello_wsgi:NUMBER"), "is not a class (it is a int)"),
])
def test_bad_targets_are_one_line_and_status_2(apps: Path, args: tuple[str, ...],
                                                message: str) -> None:
    result = run(apps, *args, "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or "usage:" in result.stderr, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_help_of_both_commands_lists_the_shared_options(apps: Path) -> None:
    for sub in ("wsgi", "run"):
        result = run(apps, sub, "--help")
        assert result.returncode == 0
        for option in ("--bind", "--workers", "--threads", "--tls-cert", "--tls-key",
                       "--forwarded-allow-ips", "--graceful-timeout"):
            assert option in result.stdout, (sub, option)
    assert "--root-path" in run(apps, "wsgi", "--help").stdout
