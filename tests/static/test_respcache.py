"""Prebuilt whole answers of small unchanged files (``SimpleHTTPRequestHandler.response_cache``)
and :class:`minihttp.static.respcache.ByteCache`.

A prebuilt answer must never outlive the file it was made from, must carry a current Date and
the handler's extra fields, and must not stand in for an answer that depends on the request
(preconditions, Origin, HTTP/1.0). Each test checks that the prebuilt path was really taken
(the general path's ``content_type`` is not called), so it cannot pass on the general path
alone. Servers bind 127.0.0.1 port 0; every request has a timeout.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import os
import socket
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from minihttp.eventloop import PooledHTTPServer
from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.static import cache as _smallfiles
from minihttp.static.cache import SmallFileCache
from minihttp.static.respcache import ByteCache
from tests.helpers.servers import running

TIMEOUT = 5.0
DATA = b"hello, prebuilt world\n" * 100  # 2.2 KiB of text


def _fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Response fields by lower-case name; a repeated field's values joined by ", "."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class Site:
    def __init__(self, root: Path, port: int, cache: ByteCache, calls: list[str]) -> None:
        self.root, self.port, self.cache, self.calls = root, port, cache, calls

    def get(self, path: str, method: str = "GET", **headers: str
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, headers={k.replace("_", "-"): v
                                                for k, v in headers.items()})
            resp = conn.getresponse()
            return resp.status, _fields(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def general(self) -> int:
        """How many requests took the general path since the last call."""
        n = len(self.calls)
        self.calls.clear()
        return n


@pytest.fixture(params=["threading", "pooled"])
def site(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)  # keep at once
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(DATA)
    (root / "sub" / "b.js").write_bytes(DATA * 2)
    responses = ByteCache()
    calls: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        small_file_cache = SmallFileCache()
        response_cache = responses
        compress = True
        compress_codings = ("gzip",)
        compressed_cache = ByteCache()

        def content_type(self, path: str) -> str:
            calls.append(path)  # the general path only: a prebuilt answer has it already
            return super().content_type(path)

        def end_headers(self) -> None:
            self.send_header("X-Extra", "yes")
            origin = self.headers.get("Origin")
            if origin:
                self.send_header("Access-Control-Allow-Origin", origin)
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    kind = ThreadingHTTPServer if request.param == "threading" else PooledHTTPServer
    server = kind(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    with running(server):
        yield Site(root, server.server_address[1], responses, calls)


def _warm(site: Site, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """First request (general path, kept), second (must be prebuilt); returns the second."""
    first = site.get(path, **headers)
    site.general()
    second = site.get(path, **headers)
    assert site.general() == 0, "the second request did not get the prebuilt answer"
    assert second[0] == first[0] and second[2] == first[2]
    return second


def test_prebuilt_answer_is_the_general_one(site: Site) -> None:
    status, h, body = _warm(site, "/a.txt")
    assert status == 200 and body == DATA and h["content-length"] == str(len(DATA))
    assert h["x-extra"] == "yes" and h["content-type"] == "text/plain; charset=utf-8"
    assert "etag" in h and "last-modified" in h and h["accept-ranges"] == "bytes"
    status, h, body = _warm(site, "/sub/b.js")
    assert status == 200 and body == DATA * 2 and h["vary"] == "Accept-Encoding"
    status, h, body = _warm(site, "/sub/b.js", Accept_Encoding="gzip")
    assert h["content-encoding"] == "gzip" and gzip.decompress(body) == DATA * 2
    assert h["etag"].endswith('-gzip"') and h["x-extra"] == "yes"


def test_head_from_prebuilt(site: Site) -> None:
    _, g, _ = _warm(site, "/a.txt")
    status, h, body = site.get("/a.txt", "HEAD")
    assert site.general() == 0
    assert status == 200 and body == b""
    assert {k: v for k, v in h.items() if k != "date"} == {
        k: v for k, v in g.items() if k != "date"}


def test_date_is_current(site: Site) -> None:
    _, first, _ = _warm(site, "/a.txt")
    time.sleep(1.1)
    _, h, _ = site.get("/a.txt")
    assert site.general() == 0
    assert h["date"] != first["date"]
    assert abs(email.utils.parsedate_to_datetime(h["date"]).timestamp() - time.time()) < 2.5


def test_modified_file_is_fresh(site: Site) -> None:
    _warm(site, "/a.txt")
    new = DATA.replace(b"hello", b"HELLO")  # same size
    (site.root / "a.txt").write_bytes(new)
    status, _, body = site.get("/a.txt")
    assert status == 200 and body == new


def test_replaced_file_is_fresh(site: Site) -> None:
    _warm(site, "/sub/b.js")
    tmp = site.root / "sub" / "tmp"
    tmp.write_bytes(b"replaced")
    os.replace(tmp, site.root / "sub" / "b.js")
    status, h, body = site.get("/sub/b.js")
    assert status == 200 and body == b"replaced" and h["content-length"] == "8"


def test_deleted_file_is_404(site: Site) -> None:
    _warm(site, "/a.txt")
    (site.root / "a.txt").unlink()
    status, _, _ = site.get("/a.txt")
    assert status == 404


def test_conditional_request_still_304(site: Site) -> None:
    _, h, _ = _warm(site, "/a.txt")
    status, h2, body = site.get("/a.txt", If_None_Match=h["etag"])
    assert status == 304 and body == b"" and h2["etag"] == h["etag"]
    status, _, body = site.get("/a.txt", If_Modified_Since=h["last-modified"])
    assert status == 304 and body == b""
    status, _, body = site.get("/a.txt", Range="bytes=0-4")
    assert status == 206 and body == DATA[:5]


def test_origin_takes_the_general_path(site: Site) -> None:
    _warm(site, "/a.txt")
    for origin in ("https://one.example", "https://two.example"):
        status, h, body = site.get("/a.txt", Origin=origin)
        assert status == 200 and body == DATA
        assert h["access-control-allow-origin"] == origin
    assert site.general() == 2
    _, h, _ = site.get("/a.txt")
    assert "access-control-allow-origin" not in h and site.general() == 0


@pytest.mark.parametrize("name", ["a.txt", "sub/b.js"])
def test_sibling_appearing_is_served(site: Site, name: str) -> None:
    """In the root (its own lstat is the proof) and below it (the parent's, from the walk)."""
    _warm(site, f"/{name}", Accept_Encoding="gzip")
    sibling = gzip.compress(b"from the sibling")
    (site.root / f"{name}.gz").write_bytes(sibling)
    status, h, body = site.get(f"/{name}", Accept_Encoding="gzip")
    assert status == 200 and body == sibling and h["content-encoding"] == "gzip"


def test_http10_request_keeps_its_framing(site: Site) -> None:
    """An HTTP/1.0 keep-alive request needs ``Connection: keep-alive`` in the answer
    (RFC 9112 section 9.3), which a prebuilt HTTP/1.1 answer does not have."""
    _warm(site, "/a.txt")
    with socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /a.txt HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        data = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not data.endswith(DATA):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nConnection: keep-alive" in head
    assert body == DATA
    assert site.general() == 0  # the prebuilt answer, framed for HTTP/1.0


# -- ByteCache ----------------------------------------------------------------------------

def _stat(tmp_path: Path, name: str, data: bytes) -> os.stat_result:
    path = tmp_path / name
    path.write_bytes(data)
    return os.stat(path)


def test_bytecache_is_lru_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    cache = ByteCache(max_entry=100, max_total=250)
    sts = {k: _stat(tmp_path, k, b"x") for k in "abcd"}
    assert cache.put("a", sts["a"], "A", 100)
    assert cache.put("b", sts["b"], "B", 100)
    assert cache.get("a", sts["a"]) == "A"  # a is now the most recently used
    assert cache.put("c", sts["c"], "C", 100)  # b goes, not a
    assert cache.get("b", sts["b"]) is None and cache.get("a", sts["a"]) == "A"
    assert cache.total == 200 and len(cache) == 2
    assert not cache.put("d", sts["d"], "D", 101)  # above max_entry
    assert cache.total <= 250


def test_bytecache_refuses_racy_and_stale(tmp_path: Path) -> None:
    cache = ByteCache()
    st = _stat(tmp_path, "f", b"one")
    assert not cache.put("f", st, "v", 3)  # just written: racily clean
    assert cache.put("f", st, "v", 3, started=time.time() + 10)
    assert cache.get("f", st) == "v"
    time.sleep(0.01)
    st2 = _stat(tmp_path, "f", b"two")
    assert cache.get("f", st2) is None and len(cache) == 0  # stale: dropped


def test_prebuilt_answer_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The access log sees a prebuilt answer like any other: status and body size."""
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    (tmp_path / "a.txt").write_bytes(DATA)
    lines: list[str] = []
    calls: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        small_file_cache = SmallFileCache()
        response_cache = ByteCache()

        def content_type(self, path: str) -> str:
            calls.append(path)
            return super().content_type(path)

        def log_message(self, format: str, *args: object) -> None:
            lines.append(format % args)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    with running(server):
        site = Site(tmp_path, server.server_address[1], Handler.response_cache, calls)
        _warm(site, "/a.txt")
        site.get("/a.txt", "HEAD")
        assert site.general() == 0
    assert lines[-2:] == [f'"GET /a.txt HTTP/1.1" 200 {len(DATA)}', '"HEAD /a.txt HTTP/1.1" 200 0']


def test_prebuilt_answers_stay_behind_the_password(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's server with --auth, --header and --compress: an answer kept for an
    authorised client is never given to one without credentials (the gate runs first)."""
    import base64

    from minihttp import cli
    from minihttp.static import handler as _handler

    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    monkeypatch.setattr(_handler, "_RESPONSES", ByteCache())
    monkeypatch.setattr(SimpleHTTPRequestHandler, "response_cache", _handler._RESPONSES)
    (tmp_path / "a.txt").write_bytes(DATA)
    args = cli.build_parser().parse_args(
        ["0", "-b", "127.0.0.1", "-d", str(tmp_path), "--auth", "alice:secret", "--compress",
         "--header", "X-Site: one", "--quiet"])
    server = cli.make_server(args)
    good = "Basic " + base64.b64encode(b"alice:secret").decode()
    with running(server):
        site = Site(tmp_path, server.server_address[1], _handler._RESPONSES, [])
        for accept in ("identity", "gzip"):
            for _ in range(2):
                status, h, body = site.get("/a.txt", Authorization=good, Accept_Encoding=accept)
                assert status == 200 and h["x-site"] == "one"
        assert len(_handler._RESPONSES) == 1  # kept (both codings of the one file)
        for accept in ("identity", "gzip"):
            status, h, body = site.get("/a.txt", Accept_Encoding=accept)
            assert status == 401 and DATA not in body and b"hello" not in body
            status, _, _ = site.get("/a.txt", Authorization="Basic " + base64.b64encode(
                b"alice:wrong").decode(), Accept_Encoding=accept)
            assert status == 401


def test_cors_from_the_command_line_with_prebuilt_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--cors ORIGIN: a kept answer (made without Origin) never stands in for a CORS one."""
    from minihttp import cli
    from minihttp.static import handler as _handler

    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    monkeypatch.setattr(_handler, "_RESPONSES", ByteCache())
    monkeypatch.setattr(SimpleHTTPRequestHandler, "response_cache", _handler._RESPONSES)
    (tmp_path / "a.txt").write_bytes(DATA)
    args = cli.build_parser().parse_args(
        ["0", "-b", "127.0.0.1", "-d", str(tmp_path), "--cors", "https://a.example",
         "--compress", "--quiet"])
    server = cli.make_server(args)
    with running(server):
        site = Site(tmp_path, server.server_address[1], _handler._RESPONSES, [])
        for _ in range(2):
            status, h, body = site.get("/a.txt")
            assert status == 200 and body == DATA
        assert len(_handler._RESPONSES) == 1
        status, h, body = site.get("/a.txt", Origin="https://a.example")
        assert status == 200 and h.get("access-control-allow-origin") == "https://a.example"
        status, h, body = site.get("/a.txt", Origin="https://b.example")
        assert status == 200 and "access-control-allow-origin" not in h


def test_user_fields_per_request_are_never_replayed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A subclass written for http.server that adds a per-request field in end_headers
    (a request id) keeps getting it fresh: its answers are not prebuilt unless the class
    sets ``response_cache`` itself."""
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    (tmp_path / "a.txt").write_bytes(DATA)
    counter = iter(range(1000))

    class RequestId(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def end_headers(self) -> None:
            self.send_header("X-Request-Id", str(next(counter)))
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RequestId, directory=str(tmp_path)))
    with running(server):
        site = Site(tmp_path, server.server_address[1], ByteCache(), [])
        ids = {site.get("/a.txt")[1]["x-request-id"] for _ in range(4)}
    assert len(ids) == 4, f"a kept head was replayed: request ids {ids}"
