"""The handler's side of logging (BaseHTTPRequestHandler.log_request / log_message /
log_error and the line written at the end of a request), against the standard library's
http.server where it has an opinion.

* A program that configured no logging prints what http.server prints, on stderr; once it
  configured logging, the lines go through it (compared in subprocesses, byte for byte but
  the date and the size, which http.server leaves as "-").
* Overrides of log_message / log_request / log_error are called as http.server calls them.
* The line handed to the command line's LineHandler is the one logging would get, on every
  server kind.
"""

from __future__ import annotations

import http.server
import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from minihttp import logs
from minihttp.eventloop import PooledHTTPServer
from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from tests.helpers.logstate import PipeReader, isolated_logging
from tests.helpers.servers import running, wait_for

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0

# --------------------------------------------------------------------------- library mode

PROGRAM = """
    import functools, logging, sys, threading, urllib.error, urllib.request
    kind, config, directory = sys.argv[1:4]
    if kind == "stdlib":
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    else:
        from minihttp.server import ThreadingHTTPServer
        from minihttp.static import SimpleHTTPRequestHandler
    if config == "info":
        logging.basicConfig(level=logging.INFO, format="LOGGING %(name)s: %(message)s")
    elif config == "default":
        logging.basicConfig()  # configured, at WARNING

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/note":
                self.log_message("note %s", "odd \\x1b[31m \\\\ text")
                self.send_response(204)
                self.end_headers()
                return
            super().do_GET()

    class Server(ThreadingHTTPServer):
        # server_close() waits for the request threads: minihttp writes the access line
        # when the request ends, after the client got the response (with the bytes sent);
        # http.server writes it before. A program exiting at once could lose the last one.
        daemon_threads = False

    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for path in ("/hello.txt", "/missing", "/note"):
        try:
            urllib.request.urlopen(base + path, timeout=5).read()
        except urllib.error.HTTPError:
            pass
    server.shutdown()
    server.server_close()
    thread.join(5)
"""


def _program(kind: str, config: str, directory: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM), kind, config, str(directory)],
        env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    return result.stderr.splitlines()


def _masked(lines: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the lines with the date masked and access-line sizes cut off, sorted: a threaded
    server may finish a request after the next one began; request line -> size)."""
    out, sizes = [], {}
    for line in lines:
        line = re.sub(r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]", "[DATE]", line)
        m = re.fullmatch(r'(.* "([^"]*)" \d{3}) (\S+)', line)
        if m:
            line = m.group(1) + " SIZE"
            sizes[m.group(2)] = m.group(3)
        out.append(line)
    return sorted(out), sizes


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_text("hello\n")
    return tmp_path


def test_unconfigured_library_prints_what_http_server_prints(site: Path) -> None:
    stdlib, stdlib_sizes = _masked(_program("stdlib", "none", site))
    ours, our_sizes = _masked(_program("minihttp", "none", site))
    assert stdlib == sorted([
        '127.0.0.1 - - [DATE] "GET /hello.txt HTTP/1.1" 200 SIZE',
        "127.0.0.1 - - [DATE] code 404, message File not found",
        '127.0.0.1 - - [DATE] "GET /missing HTTP/1.1" 404 SIZE',
        r"127.0.0.1 - - [DATE] note odd \x1b[31m \\ text",
        '127.0.0.1 - - [DATE] "GET /note HTTP/1.1" 204 SIZE',
    ])
    assert ours == stdlib
    # The one difference: minihttp logs the body bytes sent, http.server cannot know them.
    assert set(stdlib_sizes.values()) == {"-"}
    assert our_sizes["GET /hello.txt HTTP/1.1"] == "6" and our_sizes["GET /note HTTP/1.1"] == "0"
    assert int(our_sizes["GET /missing HTTP/1.1"]) > 0


def test_configured_logging_gets_the_lines_instead(site: Path) -> None:
    lines = _program("minihttp", "info", site)
    assert lines and all(line.startswith("LOGGING minihttp.") for line in lines), lines
    masked, _sizes = _masked([line.split(": ", 1)[1] for line in lines])
    assert masked == _masked(_program("stdlib", "none", site))[0]
    assert sorted(line.split(":")[0] for line in lines) == [
        "LOGGING minihttp.access"] * 4 + ["LOGGING minihttp.error"]
    assert _program("minihttp", "default", site) == []  # configured at WARNING: nothing


# --------------------------------------------------------------------------- overrides


def _recorder(base: type) -> type:
    calls: list[tuple[Any, ...]] = []

    class Recording(base):  # type: ignore[valid-type,misc]
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/missing":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            calls.append(("log_request", code, size))
            super().log_request(code, size)

        def log_error(self, format: str, *args: Any) -> None:
            calls.append(("log_error", format, args))
            super().log_error(format, *args)

        def log_message(self, format: str, *args: Any) -> None:
            calls.append(("log_message", format, args))

    Recording.calls = calls  # type: ignore[attr-defined]
    return Recording


def _calls(server_class: type, handler: type) -> list[tuple[Any, ...]]:
    server = server_class(("127.0.0.1", 0), handler)
    with running(server), requests.Session() as session:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert session.get(base + "/ok", timeout=TIMEOUT).status_code == 200
        assert session.get(base + "/missing", timeout=TIMEOUT).status_code == 404
        calls: list[tuple[Any, ...]] = handler.calls  # type: ignore[attr-defined]
        assert wait_for(lambda: sum(c[0] == "log_message" for c in calls) == 3)
    return calls


@pytest.mark.parametrize("server_class", [ThreadingHTTPServer, PooledHTTPServer])
@pytest.mark.parametrize("overridden", ["all", "log_message"])
def test_overrides_are_called_as_http_server_calls_them(server_class: type,
                                                        overridden: str) -> None:
    stdlib = _calls(http.server.ThreadingHTTPServer, _recorder(http.server.BaseHTTPRequestHandler))
    handler = _recorder(BaseHTTPRequestHandler)
    if overridden == "log_message":  # only log_message: the request's end calls it
        del handler.log_request, handler.log_error
        stdlib = [c for c in stdlib if c[0] == "log_message"]
    ours = _calls(server_class, handler)
    # The same calls in the same order with the same arguments, but the size: http.server
    # logs "-", minihttp the body bytes (it calls log_message at the request's end).
    sizes = {'"GET /ok HTTP/1.1"': "2", '"GET /missing HTTP/1.1"': None}

    def normal(call: tuple[Any, ...]) -> tuple[Any, ...]:
        if call[0] == "log_message" and call[1] == '"%s" %s %s':
            return (*call[:2], call[2][:2])
        return call

    assert [normal(c) for c in ours] == [normal(c) for c in stdlib]
    access = [c[2] for c in ours if c[0] == "log_message" and c[1] == '"%s" %s %s']
    assert access[0] == ("GET /ok HTTP/1.1", "200", sizes['"GET /ok HTTP/1.1"'])
    assert access[1][:2] == ("GET /missing HTTP/1.1", "404") and int(access[1][2]) > 0


# --------------------------------------------------------------------------- the fast line


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/note":
            self.log_message("note %s", "a\\b")
        body = b"hi" if self.path != "/missing" else b""
        if self.path == "/missing":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Odd(Hello):
    """Keeps log_message, overrides its helpers: the line must use them."""

    def address_string(self) -> str:
        return "client"

    def log_date_time_string(self) -> str:
        return "a date"


PATHS = ["/", "/missing", "/note", "/caf%C3%A9?q=%22x%22"]


def _lines(route: str, server_class: type, handler: type) -> list[str]:
    """The log lines of PATHS served by ``server_class`` with ``handler``, through the
    command line's LineHandler or through a plain logging handler."""
    expected = len(PATHS) + 2  # an access line each, the 404's error line, the note
    with isolated_logging():
        r, w = os.pipe()
        reader = PipeReader(r)
        stream = io.StringIO()
        try:
            if route == "line-handler":
                logs.configure(fd=w)
            else:
                plain = logging.StreamHandler(stream)
                plain.setFormatter(logging.Formatter("%(message)s"))
                logs.package_log.addHandler(plain)
                logs.package_log.setLevel(logging.INFO)
            server = server_class(("127.0.0.1", 0), handler)
            with running(server), requests.Session() as session:
                for path in PATHS:
                    session.get(f"http://127.0.0.1:{server.server_address[1]}{path}",
                                timeout=TIMEOUT)

                def text() -> str:
                    return reader.text() if route == "line-handler" else stream.getvalue()

                assert wait_for(lambda: text().count("\n") == expected), text()
            return sorted(text().splitlines())
        finally:
            for handler_ in list(logs.package_log.handlers):
                logs.package_log.removeHandler(handler_)
                handler_.close()
            os.close(w)
            reader.data()


@pytest.mark.parametrize("server_class", [ThreadingHTTPServer, PooledHTTPServer])
@pytest.mark.parametrize("handler", [Hello, Odd])
def test_the_command_lines_fast_line_is_the_logging_line(server_class: type,
                                                          handler: type) -> None:
    fast = _lines("line-handler", server_class, handler)
    via_logging = _lines("logging", server_class, handler)
    date = r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]"
    assert [re.sub(date, "[D]", x) for x in fast] == [re.sub(date, "[D]", x) for x in via_logging]
    host, when = ("client", r"\[a date\]") if handler is Odd else ("127.0.0.1", date)
    assert any(re.fullmatch(host + " - - " + when + r' "GET /caf%C3%A9\?q=%22x%22 HTTP/1\.1"'
                            r" 200 2", x) for x in fast), fast
    assert any(x.endswith(r"note a\\b") for x in fast), fast
