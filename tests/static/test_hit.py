"""A repeated request head answered without parsing (:mod:`minihttp.static.hit`).

Each test counts the requests ``_answer_repeat`` answered, so it cannot pass on the general
path alone, and compares with what the general path gives (bytes, log lines). Servers bind
127.0.0.1 port 0; every socket has a timeout and every loop a bound.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler, hit
from minihttp.static import cache as _smallfiles
from minihttp.static.cache import SmallFileCache
from minihttp.static.respcache import ByteCache
from tests.helpers.servers import running, wait_for

TIMEOUT = 5.0
DATA = b"repeat after me\n" * 64
HEAD = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


class Site:
    def __init__(self, root: Path, port: int, lines: list[str], repeats: list[bool]) -> None:
        self.root, self.port, self.lines, self.repeats = root, port, lines, repeats

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)

    def answered(self) -> int:
        """Requests answered by ``_answer_repeat`` since the last call."""
        n = sum(self.repeats)
        self.repeats.clear()
        return n


def read_response(sock: socket.socket, buf: bytearray, head: bool = False) -> bytes:
    """One response with a Content-Length body, none to HEAD (bytes past it stay in
    ``buf``)."""
    for _ in range(1000):
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            m = re.search(rb"\r\nContent-Length: (\d+)\r\n", bytes(buf[:end + 2]))
            total = end + 4 + (int(m.group(1)) if m and not head else 0)
            if len(buf) >= total and not (m is None and buf.startswith(b"HTTP/1.1 200")):
                out = bytes(buf[:total])
                del buf[:total]
                return out
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed; got {bytes(buf)!r}")
        buf += data
    raise AssertionError("no whole response")


def no_date(response: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)


def count_repeats(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each call of ``_answer_repeat`` returned, from now on (True: it answered)."""
    repeats: list[bool] = []
    real = SimpleHTTPRequestHandler._answer_repeat

    def counting(self: Any, head: bytes) -> bool:
        answered = real(self, head)
        repeats.append(answered)
        return answered

    monkeypatch.setattr(SimpleHTTPRequestHandler, "_answer_repeat", counting)
    return repeats


@pytest.fixture(params=["threading", "pooled"])
def site(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)  # keep at once
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(DATA)
    (root / "sub" / "b.txt").write_bytes(DATA * 2)
    lines: list[str] = []
    repeats = count_repeats(monkeypatch)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        small_file_cache = SmallFileCache()
        response_cache = ByteCache()

        def log_message(self, format: str, *args: object) -> None:
            lines.append(format % args)

    assert hit.repeatable(Handler)
    kind = ThreadingHTTPServer if request.param == "threading" else PooledHTTPServer
    server = kind(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    with running(server):
        yield Site(root, server.server_address[1], lines, repeats)


def exchange(site: Site, heads: list[bytes], together: bool = False) -> list[bytes]:
    """Send ``heads`` on one connection (one at a time, or all at once: pipelined)."""
    with site.connect() as sock:
        buf = bytearray()
        if together:
            sock.sendall(b"".join(heads))
            return [read_response(sock, buf, h.startswith(b"HEAD")) for h in heads]
        out = []
        for head in heads:
            sock.sendall(head)
            out.append(read_response(sock, buf, head.startswith(b"HEAD")))
        return out


def test_repeat_is_the_general_answer(site: Site) -> None:
    """Third of three identical heads: answered without parsing, the same bytes (but the
    Date) and the same access line as the general path's."""
    first, second, third, fourth = exchange(site, [HEAD] * 4)
    assert site.answered() == 2
    assert first.endswith(b"\r\n\r\n" + DATA) and first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert no_date(third) == no_date(second) == no_date(fourth)
    # The first (not prebuilt yet) has the same fields, Content-Length elsewhere.
    assert sorted(no_date(first).split(b"\r\n")) == sorted(no_date(second).split(b"\r\n"))
    # (a line is written just after its response is sent)
    assert wait_for(lambda: len(site.lines) == 4)
    assert site.lines == [f'"GET /a.txt HTTP/1.1" 200 {len(DATA)}'] * 4


def test_pipelined_repeats(site: Site) -> None:
    out = exchange(site, [HEAD] * 5, together=True)
    assert all(no_date(r) == no_date(out[1]) for r in out[1:])
    assert site.answered() >= 1
    assert wait_for(lambda: len(site.lines) == 5)


def test_modified_replaced_deleted(site: Site) -> None:
    """Between repeated heads on one connection the file changes: the answer follows."""
    path = site.root / "a.txt"
    with site.connect() as sock:
        buf = bytearray()

        def get() -> bytes:
            sock.sendall(HEAD)
            return read_response(sock, buf)

        for _ in range(3):
            get()
        assert site.answered() == 1
        path.write_bytes(b"changed, longer than before\n" * 50)
        assert get().endswith(b"changed, longer than before\n" * 50)
        assert site.answered() == 0
        for _ in range(2):
            get()
        assert site.answered() == 1
        tmp = site.root / "new"
        tmp.write_bytes(b"x" * len(path.read_bytes()))  # same size, another inode
        os.replace(tmp, path)
        assert get().endswith(b"\r\n\r\n" + b"x" * (28 * 50))
        assert site.answered() == 0
        get()
        get()
        assert site.answered() == 1
        path.unlink()
        assert get().startswith(b"HTTP/1.1 404 ")
        assert site.answered() == 0


def test_sibling_appearing_is_served(site: Site) -> None:
    head = HEAD.replace(b"Accept: */*", b"Accept-Encoding: gzip")
    with site.connect() as sock:
        buf = bytearray()
        for _ in range(3):
            sock.sendall(head)
            assert read_response(sock, buf).endswith(DATA)
        assert site.answered() == 1
        (site.root / "a.txt.gz").write_bytes(b"gzipped-bytes")
        sock.sendall(head)
        response = read_response(sock, buf)
    assert response.endswith(b"\r\n\r\ngzipped-bytes") and b"Content-Encoding: gzip" in response
    assert site.answered() == 0


def test_directory_becoming_a_symlink(site: Site, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A file one directory down: that directory moved out of the root (the file keeps its
    identity) and a link to it put in its place: 404, as on the general path. Without
    precompressed siblings, so that no directory identity is compared on the way."""
    monkeypatch.setattr(SimpleHTTPRequestHandler, "precompressed", ())
    head = HEAD.replace(b"/a.txt", b"/sub/b.txt")
    with site.connect() as sock:
        buf = bytearray()
        for _ in range(3):
            sock.sendall(head)
            assert read_response(sock, buf).endswith(DATA * 2)
        assert site.answered() == 1
        os.rename(site.root / "sub", tmp_path / "outside")
        os.symlink(tmp_path / "outside", site.root / "sub")
        sock.sendall(head)
        assert read_response(sock, buf).startswith(b"HTTP/1.1 404 ")
    assert site.answered() == 0


@pytest.mark.parametrize("head", [
    HEAD.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"Accept:", b"Connection: keep-alive\r\nAccept:"),
    HEAD.replace(b"GET", b"HEAD"),
    HEAD.replace(b"Accept: */*", b"Range: bytes=0-3"),
    HEAD.replace(b"Accept: */*", b"If-None-Match: \"nope\""),
])
def test_other_requests_are_parsed(site: Site, head: bytes) -> None:
    out = exchange(site, [head] * 4)
    assert site.answered() == 0
    assert all(no_date(r) == no_date(out[1]) for r in out[2:])


def test_a_body_is_never_skipped(site: Site) -> None:
    """A GET with a body: the body must be read, never taken for the next head."""
    head = HEAD.replace(b"Accept: */*", b"Content-Length: 5") + b"hello"
    out = exchange(site, [head] * 4, together=True)
    assert all(r.startswith(b"HTTP/1.1 200 ") and r.endswith(DATA) for r in out)
    assert site.answered() == 0


def test_which_classes_repeat(tmp_path: Path) -> None:
    """The command line's class repeats; with a password, CORS, uploads or another access
    log format it does not; nor does a user's class with any method of its own."""
    from minihttp import cli
    from minihttp.accesslog import with_access_log

    def cls(*options: str) -> type:
        args = cli.build_parser().parse_args(["0", "-d", str(tmp_path), *options])
        handler = with_access_log(_handler_of(args), args.access_log_format)
        return handler.func if isinstance(handler, partial) else handler  # type: ignore[no-any-return]

    assert hit.repeatable(cls("--quiet", "--header", "X-A: b", "--compress"))
    assert not hit.repeatable(cls("--auth", "alice:secret"))
    assert not hit.repeatable(cls("--cors"))
    assert not hit.repeatable(cls("--upload"))
    assert not hit.repeatable(cls("--access-log-format", "combined"))

    class Own(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            super().do_GET()

    assert not hit.repeatable(Own)


def _handler_of(args: Any) -> Any:
    """The handler class ``cli.make_server`` builds for ``args`` (without binding)."""
    from minihttp import cli

    captured: list[Any] = []
    real = cli.build_server
    try:
        cli.build_server = lambda a, handler, attrs=None: captured.append(handler)  # type: ignore[assignment,misc]
        cli.make_server(args)
    finally:
        cli.build_server = real
    return captured[0]


def test_forwarded_addresses_are_never_skipped(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a trusted proxy the client comes from each request: every one is parsed."""
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    (tmp_path / "a.txt").write_bytes(DATA)
    lines: list[str] = []
    repeats = count_repeats(monkeypatch)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        response_cache = ByteCache()

        def log_message(self, format: str, *args: object) -> None:
            lines.append(self.address_string())

    server = PooledHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    server.forwarded_allow_ips = "127.0.0.1"
    head = HEAD.replace(b"Accept: */*", b"X-Forwarded-For: 192.0.2.7")
    with running(server):
        site = Site(tmp_path, server.server_address[1], lines, [])
        with site.connect() as sock:
            buf = bytearray()
            for _ in range(4):
                sock.sendall(head)
                assert read_response(sock, buf).endswith(DATA)
    assert wait_for(lambda: len(lines) == 4) and lines == ["192.0.2.7"] * 4
    assert hit.repeatable(Handler)
    assert not any(repeats)


def test_command_line_access_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m minihttp --access-log FILE`` (its fast log route): a repeated head gets
    the same access line as a parsed one, with the body's size."""
    from minihttp import cli, logs
    from minihttp.static import handler as _handler
    from tests.helpers.logstate import isolated_logging

    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    monkeypatch.setattr(SimpleHTTPRequestHandler, "response_cache", ByteCache())
    monkeypatch.setattr(_handler, "_RESPONSES", SimpleHTTPRequestHandler.response_cache)
    repeats = count_repeats(monkeypatch)
    (tmp_path / "a.txt").write_bytes(DATA)
    log = tmp_path / "access.log"
    args = cli.build_parser().parse_args(["0", "-b", "127.0.0.1", "-d", str(tmp_path),
                                          "--header", "X-Site: one"])
    with isolated_logging():
        logs.package_log.setLevel(logging.INFO)  # as configure() sets it first
        writer = logs.access_to(str(log))
        try:
            server = cli.make_server(args)
            with running(server):
                site = Site(tmp_path, server.server_address[1], [], repeats)
                out = exchange(site, [HEAD] * 4)
                assert site.answered() == 2 and b"\r\nX-Site: one\r\n" in out[3]
                assert all(no_date(r) == no_date(out[1]) for r in out[1:])

                def lines() -> list[str]:
                    writer.flush()
                    return log.read_text().splitlines()

                assert wait_for(lambda: len(lines()) == 4), lines()
        finally:
            writer.close()
    tails = [line.split("] ", 1)[1] for line in lines()]
    assert tails == [f'"GET /a.txt HTTP/1.1" 200 {len(DATA)}'] * 4
    assert all(line.startswith("127.0.0.1 - - [") for line in lines())


def test_password_protected_heads_are_always_parsed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``--auth``: the check runs on every request, repeated heads included (a repeated
    head with the right credentials is still parsed and checked; one without gets 401)."""
    import base64

    from minihttp.static import handler as _handler
    from tests.helpers.cliserver import file_server

    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    monkeypatch.setattr(SimpleHTTPRequestHandler, "response_cache", ByteCache())
    monkeypatch.setattr(_handler, "_RESPONSES", SimpleHTTPRequestHandler.response_cache)
    repeats = count_repeats(monkeypatch)
    (tmp_path / "a.txt").write_bytes(DATA)
    good = b"Authorization: Basic " + base64.b64encode(b"alice:secret") + b"\r\nAccept:"
    with file_server(tmp_path, "--auth", "alice:secret") as url:
        site = Site(tmp_path, int(url.rsplit(":", 1)[1]), [], repeats)
        out = exchange(site, [HEAD.replace(b"Accept:", good)] * 4 + [HEAD] * 2)
    assert [r[9:12] for r in out] == [b"200"] * 4 + [b"401"] * 2
    assert site.answered() == 0


def _vary(response: bytes) -> list[bytes]:
    """The values of the response's Vary fields, one per field line."""
    head = response.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"vary:")]


@pytest.mark.parametrize("kind", [ThreadingHTTPServer, PooledHTTPServer],
                         ids=["threading", "pooled"])
def test_spa_fallback_is_never_kept_nor_replayed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 kind: type) -> None:
    """``--spa``: the index page served for a route carries ``Vary: Accept`` (one field with
    Accept-Encoding); the index file's own answer does not. On one keep-alive connection,
    neither answer may stand in for the other: the fallback is not kept as the index file's
    prebuilt answer, a kept one is not replayed for a route, and a route's repeated head is
    never answered by ``_answer_repeat``."""
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)  # keep at once
    repeats = count_repeats(monkeypatch)
    page = b"<!doctype html><title>shell</title>\n" + DATA  # 1 KiB and more: compressible
    (tmp_path / "index.html").write_bytes(page)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        spa = True
        small_file_cache = SmallFileCache()
        response_cache = ByteCache()
        compress = True
        compress_codings = ("gzip",)
        compressed_cache = ByteCache()

        def log_message(self, format: str, *args: object) -> None:
            pass

    assert hit.repeatable(Handler)
    get = b"GET %s HTTP/1.1\r\nHost: t\r\nAccept: %s\r\n%s\r\n"
    route = get % (b"/users/42", b"text/html", b"")
    route_gz = get % (b"/users/42", b"text/html", b"Accept-Encoding: gzip\r\n")
    index = get % (b"/index.html", b"text/html", b"")
    index_gz = get % (b"/index.html", b"text/html", b"Accept-Encoding: gzip\r\n")
    server = kind(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    with running(server):
        site = Site(tmp_path, server.server_address[1], [], repeats)
        with site.connect() as sock:
            buf = bytearray()

            def send(head: bytes) -> bytes:
                sock.sendall(head)
                return read_response(sock, buf)

            # The fallback first (compressed and not): it must not become index.html's own.
            for head in (route_gz, route_gz, route, route):
                r = send(head)
                assert r.startswith(b"HTTP/1.1 200 ") and _vary(r) == [b"Accept-Encoding, Accept"]
            for head in (index_gz, index_gz, index_gz, index, index, index):
                r = send(head)
                assert r.startswith(b"HTTP/1.1 200 ") and _vary(r) == [b"Accept-Encoding"]
            assert site.answered() >= 2  # index.html's own answers were kept and repeated
            # index.html's kept answers (and its remembered head) exist now: a route still
            # gets the fallback with its Vary, never the kept answer, each time.
            for head in (route, route, route, route_gz, route_gz, route_gz):
                r = send(head)
                assert r.startswith(b"HTTP/1.1 200 ") and _vary(r) == [b"Accept-Encoding, Accept"]
            assert site.answered() == 0
            assert send(route).endswith(b"\r\n\r\n" + page)
            missing = send(get % (b"/users/42", b"*/*", b""))
            assert missing.startswith(b"HTTP/1.1 404 ") and _vary(missing) == [b"Accept"]
