"""Compression on the fly (``SimpleHTTPRequestHandler.compress``, ``--compress``).

Covers :mod:`minihttp.static.compress` and its use by the handler: negotiation by
``Accept-Encoding`` q-values, ``Vary``, an ETag per coding and ``If-None-Match`` per variant,
``Range`` served from the identity body, HEAD, the bounded compressed-body cache, a changed
file, precompressed siblings winning, small and non-text files left alone, and a large file
streamed. Servers bind 127.0.0.1 port 0; every request has a timeout.
"""

from __future__ import annotations

import gzip
import http.client
import io
import os
import random
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
from minihttp.static import compress as _compress
from minihttp.static import handler as _handler
from minihttp.static.cache import SmallFileCache
from minihttp.static.encoding import choose_encoding
from minihttp.static.respcache import ByteCache
from tests.helpers.servers import running

TIMEOUT = 5.0


def _text(n: int, seed: int = 1) -> bytes:
    """``n`` bytes of compressible but not trivial text."""
    rnd = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"function", b"return", b"const"]
    out = bytearray()
    while len(out) < n:
        out += rnd.choice(words) + b" %d;\n" % rnd.randrange(1000)
    return bytes(out[:n])


JS = _text(100 * 1024)
SMALL = _text(600)


def _fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Response fields by lower-case name; a repeated field's values joined by ", "."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class Site:
    """A served directory and a keep-alive client for it."""

    def __init__(self, root: Path, port: int, compressed: ByteCache) -> None:
        self.root = root
        self.port = port
        self.compressed = compressed

    def get(self, path: str, method: str = "GET", **headers: str
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, headers={k.replace("_", "-"): v
                                                for k, v in headers.items()})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, _fields(resp.getheaders()), body
        finally:
            conn.close()


@pytest.fixture(params=["threading", "pooled"])
def site(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)  # cache at once
    root = tmp_path / "root"
    root.mkdir()
    (root / "app.js").write_bytes(JS)
    (root / "small.txt").write_bytes(SMALL)
    (root / "photo.png").write_bytes(JS)  # text bytes, but not a text type
    (root / "data.json").write_bytes(JS[:5000])
    compressed = ByteCache(max_entry=1024 * 1024, max_total=64 * 1024)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        compress = True
        compress_codings = ("gzip",)
        compressed_cache = compressed
        small_file_cache = SmallFileCache()
        response_cache = ByteCache()

        def log_message(self, format: str, *args: object) -> None:
            pass

    kind = ThreadingHTTPServer if request.param == "threading" else PooledHTTPServer
    server = kind(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    with running(server):
        yield Site(root, server.server_address[1], compressed)


# -- negotiation (pure) -------------------------------------------------------------------

@pytest.mark.parametrize(("accept", "expected"), [
    (None, None),  # no field: identity (encoding.py's rule)
    ("gzip", "gzip"),
    ("gzip;q=0", None),
    ("deflate, br", None),
    ("*", "gzip"),
    ("*;q=0", None),
    ("*;q=0, gzip;q=0.5", "gzip"),
    ("identity;q=1, gzip;q=0.5", None),  # identity preferred
    ("identity;q=0, gzip;q=0.1", "gzip"),
    ("x-gzip", "gzip"),
    ("GZIP;Q=1", "gzip"),
    ("gzip;q=2", None),  # malformed q: element skipped
])
def test_q_values(accept: str | None, expected: str | None) -> None:
    assert choose_encoding(accept, ["gzip"]) == expected


@pytest.mark.parametrize(("ctype", "expected"), [
    ("text/html; charset=utf-8", True), ("text/javascript", True),
    ("application/json", True), ("application/manifest+json", True),
    ("image/svg+xml", True), ("application/wasm", True), ("application/yaml", True),
    ("application/vnd.api+json", True), ("image/png", False), ("font/woff2", False),
    ("application/octet-stream", False), ("application/gzip", False), ("video/mp4", False),
])
def test_compressible_types(ctype: str, expected: bool) -> None:
    assert _compress.compressible(ctype) is expected


def test_gzip_is_deterministic() -> None:
    """A strong ETag per coding needs the same bytes every time (no time stamp in gzip)."""
    first = _compress.compress(JS, "gzip")
    time.sleep(1.1)
    assert _compress.compress(JS, "gzip") == first
    assert gzip.decompress(first) == JS


def test_stream_never_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(JS)
    reads: list[int] = []

    class Spy(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            reads.append(len(data))
            return data

    stream = _compress.CompressedStream(Spy(path), "gzip", chunk_size=4096)
    pieces = []
    for _ in range(1000):
        piece = stream.read(65536)
        if not piece:
            break
        pieces.append(piece)
    stream.close()
    assert gzip.decompress(b"".join(pieces)) == JS
    assert sum(reads) == len(JS) and max(reads) <= 4096  # one chunk of the file at a time


# -- over HTTP ----------------------------------------------------------------------------

def test_gzip_when_accepted_identity_otherwise(site: Site) -> None:
    status, h, body = site.get("/app.js", Accept_Encoding="gzip, deflate")
    assert status == 200 and h["content-encoding"] == "gzip"
    assert h["vary"] == "Accept-Encoding"
    assert int(h["content-length"]) == len(body) < len(JS)
    assert gzip.decompress(body) == JS
    for accept in (None, "gzip;q=0", "br", "identity"):
        extra = {} if accept is None else {"Accept_Encoding": accept}
        status, h2, body2 = site.get("/app.js", **extra)
        assert status == 200 and "content-encoding" not in h2, accept
        assert h2["vary"] == "Accept-Encoding" and body2 == JS


def test_etag_per_coding_and_if_none_match_per_variant(site: Site) -> None:
    _, hz, _ = site.get("/app.js", Accept_Encoding="gzip")
    _, hi, _ = site.get("/app.js")
    assert hz["etag"] != hi["etag"] and hz["etag"].endswith('-gzip"')
    # The gzip tag revalidates the gzip variant, not the identity one, and vice versa.
    status, h, body = site.get("/app.js", Accept_Encoding="gzip", If_None_Match=hz["etag"])
    assert status == 304 and body == b"" and h["etag"] == hz["etag"]
    assert h["vary"] == "Accept-Encoding"
    status, h, body = site.get("/app.js", If_None_Match=hz["etag"])
    assert status == 200 and body == JS and h["etag"] == hi["etag"]
    status, _, _ = site.get("/app.js", If_None_Match=hi["etag"])
    assert status == 304
    status, h, body = site.get("/app.js", Accept_Encoding="gzip", If_None_Match=hi["etag"])
    assert status == 200 and gzip.decompress(body) == JS


def test_range_gets_identity(site: Site) -> None:
    status, h, body = site.get("/app.js", Accept_Encoding="gzip", Range="bytes=10-19")
    assert status == 206 and "content-encoding" not in h
    assert body == JS[10:20] and h["vary"] == "Accept-Encoding"
    assert h["content-range"] == f"bytes 10-19/{len(JS)}"


def test_head_has_the_headers_of_get(site: Site) -> None:
    for accept in ("gzip", "identity"):
        _, g, _ = site.get("/app.js", Accept_Encoding=accept)
        status, h, body = site.get("/app.js", "HEAD", Accept_Encoding=accept)
        assert status == 200 and body == b""
        for name in ("content-type", "content-length", "content-encoding", "etag", "vary",
                     "last-modified"):
            assert h.get(name) == g.get(name), (accept, name)


def test_small_and_non_text_files_are_not_compressed(site: Site) -> None:
    status, h, body = site.get("/small.txt", Accept_Encoding="gzip")
    assert status == 200 and "content-encoding" not in h and "vary" not in h
    assert body == SMALL
    status, h, body = site.get("/photo.png", Accept_Encoding="gzip")
    assert status == 200 and "content-encoding" not in h and body == JS


def test_compressed_body_is_cached_and_bounded(site: Site,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(data: bytes, coding: str, level: int = 6) -> bytes:
        calls.append(coding)
        return _compress.compress(data, coding, level)

    monkeypatch.setattr(_handler, "compress", counting)
    site.get("/app.js", Accept_Encoding="gzip")
    assert len(site.compressed) == 1 and calls == ["gzip"]
    # Again, with a Range-less conditional that misses (the general path, not a prebuilt
    # answer): the body comes from the cache, not from compressing again.
    status, _, body = site.get("/app.js", Accept_Encoding="gzip", If_None_Match='"nope"')
    assert status == 200 and gzip.decompress(body) == JS
    assert calls == ["gzip"]
    # More distinct compressed bodies than the 64 KiB bound holds: old ones go.
    for i in range(12):
        (site.root / f"f{i}.js").write_bytes(_text(100 * 1024, seed=i + 10))
        status, _, body = site.get(f"/f{i}.js", Accept_Encoding="gzip")
        assert status == 200 and len(gzip.decompress(body)) == 100 * 1024
        assert site.compressed.total <= 64 * 1024


def test_changed_file_gets_a_new_body(site: Site) -> None:
    _, h1, body = site.get("/data.json", Accept_Encoding="gzip")
    assert gzip.decompress(body) == JS[:5000]
    new = _text(5000, seed=99)
    path = site.root / "data.json"
    path.write_bytes(new)  # same size
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    _, h2, body = site.get("/data.json", Accept_Encoding="gzip")
    assert gzip.decompress(body) == new and h2["etag"] != h1["etag"]


def test_precompressed_sibling_wins(site: Site) -> None:
    site.get("/app.js", Accept_Encoding="gzip")  # compressed on the fly, cached
    sibling = gzip.compress(b"precompressed!")
    (site.root / "app.js.gz").write_bytes(sibling)
    status, h, body = site.get("/app.js", Accept_Encoding="gzip")
    assert status == 200 and h["content-encoding"] == "gzip" and body == sibling


def test_large_file_is_streamed(site: Site) -> None:
    big = _text(1024 * 1024 + 70_000, seed=5)  # above compress_whole_max
    (site.root / "big.txt").write_bytes(big)
    status, h, body = site.get("/big.txt", Accept_Encoding="gzip")
    assert status == 200 and h["content-encoding"] == "gzip"
    assert h.get("transfer-encoding") == "chunked" and "content-length" not in h
    assert gzip.decompress(body) == big
    status, h, body = site.get("/big.txt", "HEAD", Accept_Encoding="gzip")
    assert status == 200 and body == b"" and h["content-encoding"] == "gzip"
    etag = h["etag"]
    status, _, body = site.get("/big.txt", Accept_Encoding="gzip", If_None_Match=etag)
    assert status == 304 and body == b""


def test_large_file_streamed_to_http10_until_close(site: Site) -> None:
    """No chunked coding in HTTP/1.0: the streamed body ends with the connection."""
    big = _text(1024 * 1024 + 70_000, seed=6)
    (site.root / "big.txt").write_bytes(big)
    with socket.create_connection(("127.0.0.1", site.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /big.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        data = bytearray()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nContent-Encoding: gzip" in head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert gzip.decompress(body) == big


def test_off_by_default(tmp_path: Path) -> None:
    assert SimpleHTTPRequestHandler.compress is False
    (tmp_path / "app.js").write_bytes(JS)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    with running(server):
        status, h, body = Site(tmp_path, server.server_address[1], ByteCache()).get(
            "/app.js", Accept_Encoding="gzip")
    assert status == 200 and "content-encoding" not in h and body == JS


def test_cli_flag() -> None:
    from minihttp.cli import build_parser

    args = build_parser().parse_args(["--compress"])
    assert _compress.handler_attrs(args) == {"compress": True}
    assert _compress.handler_attrs(build_parser().parse_args([])) == {"compress": False}

