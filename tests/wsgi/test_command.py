"""``python -m minihttp wsgi`` and ``python -m minihttp run``: real subprocesses on loopback.

Each server is started with a bounded wait for its "Serving ..." line and always killed in
a ``finally`` if it did not exit by itself. Applications live in a temporary directory that
is the subprocess's current directory (importable, as the command promises).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
import requests

from tests.helpers.servers import wait_for
from tests.wsgi.conftest import read_until_close

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
        def which_thread(environ, start_response):
            import threading
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [threading.current_thread().name.encode()]
    """,
    "holding.py": """
        import os, time, uuid
        def application(environ, start_response):
            if environ["PATH_INFO"] == "/hold":
                open("in-" + uuid.uuid4().hex, "w").close()  # the test sees who is inside
                for _ in range(3000):  # bounded: 30 s
                    if os.path.exists("release"):
                        break
                    time.sleep(0.01)
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("X-Pid", str(os.getpid()))])
            return [b"done"]
    """,
    "versioned.py": """
        def application(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"v1"]
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
def command(cwd: Path, *args: str, pass_fds: tuple[int, ...] = (),
            env: dict[str, str] | None = None,
            argv: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m minihttp ARGS`` in ``cwd``; yield (process, where it serves: the
    ``http(s)://host:port/`` or ``unix:PATH`` of its first line) once it serves."""
    proc = subprocess.Popen(argv or [sys.executable, "-m", "minihttp", *args], cwd=cwd,
                            env=env or _env(), pass_fds=pass_fds, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = _readline(proc)
        m = re.search(r" on (https?://\S+:\d+/|unix:\S+) \(", line)
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
    """SIGTERM; the exit status and standard error."""
    code, _out, err = stop_all(proc)
    return code, err


def stop_all(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGTERM; the exit status, standard output and standard error."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


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


def test_sighup_replaces_the_workers_losing_no_request(apps: Path) -> None:
    # Every request on a new connection must be answered while the old worker drains and
    # the new one starts (cli.graceful_stop: the old worker stops accepting before its
    # drain, which would otherwise close a just-accepted connection unanswered).
    with command(apps, "wsgi", "hello_wsgi", "0", "--workers", "1", "-q") as (proc, url):
        first = requests.get(url, timeout=5).headers["X-Pid"]
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: requests.get(url, timeout=5).headers["X-Pid"] != first, 20)
        assert stop(proc)[0] == 0


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


def test_threads_mean_requests_run_on_pool_threads(apps: Path) -> None:
    # Default: served on the event loop (the main thread runs it); --threads N: the
    # application may block, every request runs on a pool thread and the loop stays free.
    with command(apps, "wsgi", "hello_wsgi:which_thread", "0", "-q") as (proc, url):
        assert requests.get(url, timeout=5).text == "MainThread"
        assert stop(proc)[0] == 0
    with command(apps, "wsgi", "hello_wsgi:which_thread", "0", "-q",
                 "--threads", "4") as (proc, url):
        names = {requests.get(url, timeout=5).text for _ in range(5)}
        assert "MainThread" not in names and names
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


# -- listeners: --unix, --fd, systemd socket activation ------------------------------------------


def unix_get(path: str, target: str, headers: str = "") -> bytes:
    """One GET over a Unix socket with ``Connection: close``; the whole response."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: app\r\n{headers}"
                  "Connection: close\r\n\r\n".encode())
        return read_until_close(s)


def test_unix_socket_peers_are_local_and_the_file_is_removed(apps: Path,
                                                              tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with command(apps, "wsgi", "hello_wsgi", "--unix", path, "-q",
                 "--forwarded-allow-ips", "127.0.0.1") as (proc, where):
        assert where == f"unix:{path}"
        response = unix_get(path, "/x")
        assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(
            b" /x 127.0.0.1 http False")
        # nginx over the socket: trusted as loopback
        response = unix_get(path, "/y", "X-Forwarded-For: 198.51.100.4\r\n"
                                        "X-Forwarded-Proto: https\r\n")
        assert response.endswith(b" /y 198.51.100.4 https False")
        assert stop(proc)[0] == 0
    assert not os.path.exists(path)


def test_unix_socket_survives_workers_replaced(apps: Path, tmp_path: Path) -> None:
    # A retiring worker closes its copy of the server: the socket file must stay (only the
    # supervisor, which made it, removes it at the end).
    path = str(tmp_path / "app.sock")
    with command(apps, "wsgi", "hello_wsgi", "--unix", path, "-q", "--workers", "1",
                 "--max-requests", "2") as (proc, _where):
        for _ in range(7):
            assert unix_get(path, "/r").startswith(b"HTTP/1.1 200 OK")
        assert os.path.exists(path)
        assert stop(proc)[0] == 0
    assert not os.path.exists(path)


def test_unix_socket_stale_file_is_replaced_live_one_refused(apps: Path,
                                                             tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays: what a killed server leaves
    with command(apps, "wsgi", "hello_wsgi", "--unix", path, "-q") as (proc, _where):
        assert unix_get(path, "/").startswith(b"HTTP/1.1 200 OK")
        second = run(apps, "wsgi", "hello_wsgi", "--unix", path)
        assert second.returncode == 1
        assert "address already in use" in second.stderr
        assert stop(proc)[0] == 0
    (tmp_path / "plain").write_text("not a socket")
    result = run(apps, "wsgi", "hello_wsgi", "--unix", str(tmp_path / "plain"))
    assert result.returncode == 2 and "exists and is not a socket" in result.stderr
    assert (tmp_path / "plain").read_text() == "not a socket"


def test_inherited_descriptor(apps: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    try:
        with command(apps, "wsgi", "hello_wsgi", "--fd", str(fd), "-q",
                     pass_fds=(fd,)) as (proc, where):
            assert where == f"http://127.0.0.1:{port}/"
            assert requests.get(where + "z", timeout=5).text == " /z 127.0.0.1 http False"
            assert stop(proc)[0] == 0
    finally:
        listener.close()


def test_systemd_socket_activation(apps: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # What systemd does: the socket as descriptor 3, LISTEN_PID = the server's own pid
    # (hence a small exec wrapper: exec keeps the pid).
    wrapper = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
               "os.environ['LISTEN_PID'] = str(os.getpid()); os.environ['LISTEN_FDS'] = '1'; "
               "os.execv(sys.executable, [sys.executable, '-m', 'minihttp', 'wsgi', "
               "'hello_wsgi', '-q'])")
    try:
        with command(apps, argv=[sys.executable, "-c", wrapper, str(listener.fileno())],
                     pass_fds=(listener.fileno(),)) as (proc, where):
            assert where == f"http://127.0.0.1:{port}/"
            assert requests.get(where + "sd", timeout=5).text.startswith(" /sd ")
            assert stop(proc)[0] == 0
    finally:
        listener.close()


# -- access log formats ----------------------------------------------------------------------


def test_access_log_json_lines_to_a_file(apps: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "access.jsonl"
    with command(apps, "wsgi", "hello_wsgi", "0", "--access-log", str(log_file),
                 "--access-log-format", "json") as (proc, url):
        requests.get(url + "j?q=1", timeout=5, headers={"User-Agent": 'tester "1"',
                                                         "Referer": "http://r/"})
        requests.get(url + "k", timeout=5)
        code, err = stop(proc)
    assert code == 0
    assert '"GET /j' not in err  # the file has the lines, not standard error
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    # (a line is written after its response went out: the two may be logged in either order)
    assert sorted((e["method"], e["path"], e["status"]) for e in lines) == [
        ("GET", "/j?q=1", 200), ("GET", "/k", 200)]
    first = next(e for e in lines if e["path"] == "/j?q=1")
    assert first["agent"] == 'tester "1"' and first["referer"] == "http://r/"
    assert first["remote"] == "127.0.0.1" and first["protocol"] == "HTTP/1.1"
    assert isinstance(first["size"], int) and first["duration_ms"] >= 0


def test_access_log_combined_and_template(apps: Path) -> None:
    with command(apps, "wsgi", "hello_wsgi", "0", "--access-log", "-",
                 "--access-log-format", "combined") as (proc, url):
        requests.get(url + "c", timeout=5, headers={"User-Agent": "ua/1"})
        code, out, _err = stop_all(proc)
    assert code == 0
    assert re.search(r'"GET /c HTTP/1.1" 200 \d+ "-" "ua/1"$', out, re.M), out
    with command(apps, "run", "hello_handler:Hello", "0", "--access-log-format",
                 "{method} {path} {status} {host}") as (proc, url):
        requests.get(url + "t", timeout=5)
        _code, err = stop(proc)
    assert re.search(r"^GET /t 200 127\.0\.0\.1:\d+$", err, re.M), err


def test_bad_access_log_format_is_a_usage_error(apps: Path) -> None:
    result = run(apps, "wsgi", "hello_wsgi", "--access-log-format", "{nope}")
    assert result.returncode == 2 and "bad access log format" in result.stderr


# -- --limit-concurrency, --max-requests, --reload -------------------------------------------------


def test_limit_concurrency_answers_503_with_retry_after(apps: Path) -> None:
    import concurrent.futures

    with command(apps, "wsgi", "holding", "0", "-q", "--threads", "4",
                 "--limit-concurrency", "2") as (proc, url), \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [pool.submit(requests.get, url + "hold", timeout=15) for _ in range(2)]
        # Both holders inside the application (each leaves a file as it enters), bounded.
        assert wait_for(lambda: len(list(apps.glob("in-*"))) == 2, timeout=20), (
            "the holders did not both get in", [f.done() and f.exception() for f in held])
        refused = requests.get(url + "other", timeout=5)
        assert refused.status_code == 503, (refused.status_code, refused.text)
        assert refused.headers["Retry-After"] == "1"
        (apps / "release").write_text("")
        assert [f.result().status_code for f in held] == [200, 200]
        assert requests.get(url + "other", timeout=5).status_code == 200  # room again
        assert stop(proc)[0] == 0


def test_max_requests_replaces_the_worker(apps: Path) -> None:
    (apps / "release").write_text("")
    with command(apps, "wsgi", "holding", "0", "--workers", "1", "--max-requests", "3",
                 "--max-requests-jitter", "0") as (proc, url):
        pids = []
        for _ in range(7):
            r = requests.get(url + "x", timeout=10)  # a new connection each time
            assert r.status_code == 200
            pids.append(r.headers["X-Pid"])
        code, err = stop(proc)
    assert code == 0
    # A retiring worker may still take a connection that arrives before it stops accepting
    # (it finishes it): so not an exact split, but the first three are the first worker's
    # and the worker was replaced.
    assert pids[0] == pids[1] == pids[2] and len(set(pids)) >= 2, pids
    assert "served 3 requests: retiring" in err


def test_max_requests_needs_workers(apps: Path) -> None:
    result = run(apps, "wsgi", "holding", "--max-requests", "5")
    assert result.returncode == 2 and "--max-requests needs --workers" in result.stderr


def test_reload_restarts_on_a_source_change(apps: Path) -> None:
    with command(apps, "wsgi", "versioned", "0", "-q", "--reload") as (proc, url):
        assert requests.get(url, timeout=5).text == "v1"
        source = apps / "versioned.py"
        source.write_text(source.read_text().replace('b"v1"', 'b"v2"'))
        later = time.time() + 5
        os.utime(source, (later, later))  # a different mtime even on a coarse clock
        assert proc.stdout is not None
        line = _readline(proc)  # the new child's "Serving ..." line (bounded wait)
        port = re.search(r":(\d+)/ \(", line)
        assert port, line
        assert requests.get(f"http://127.0.0.1:{port.group(1)}/", timeout=5).text == "v2"
        code, _err = stop(proc)
    assert code == 0
