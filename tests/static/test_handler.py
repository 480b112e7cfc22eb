"""End-to-end tests of SimpleHTTPRequestHandler over real loopback sockets.

Clients: ``requests`` for ordinary requests, raw sockets for hostile targets (clients would
normalise them), ``curl`` for a second real client. Every socket and subprocess is bounded in
time; the server runs on 127.0.0.1 port 0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

pytest.importorskip("minihttp.server")

from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from tests.helpers.servers import open_fds, running

TIMEOUT = 5.0
BIG_SIZE = 3 * 1024 * 1024 + 17
CURL = shutil.which("curl")
CURL_BIN = CURL or "curl"  # typed str for the argv lists; tests skip when CURL is None


def _big_bytes() -> bytes:
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB, not a repeating 256-byte cycle
    data = bytearray()
    i = 0
    while len(data) < BIG_SIZE:
        data += bytes((b + i) & 0xFF for b in block[:256]) + block
        i += 1
    return bytes(data[:BIG_SIZE])


BIG = _big_bytes()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("static")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    root = base / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello world\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "big.bin").write_bytes(BIG)
    (root / "with space.txt").write_text("space\n")
    (root / "ünïcödé.txt").write_text("unicode\n")
    (root / "<script>alert(1)<script>.html").write_text("<p>x</p>")
    (root / "%2e%2e").write_text("literal percent name\n")
    with open(os.path.join(os.fsencode(root), b"raw\xff.txt"), "wb") as f:
        f.write(b"not utf-8 name\n")  # a POSIX name that is not valid UTF-8
    for name in ("app.js", "mod.mjs", "x.wasm", "data.json", "pic.svg", "pic.webp",
                 "pic.avif", "font.woff2", "page.html", "style.css", "blob.unknownext"):
        (root / name).write_bytes(b"content of " + name.encode())
    sub = root / "sub"
    sub.mkdir()
    (sub / "index.html").write_text("<h1>sub index</h1>")
    listing = root / "listing"
    listing.mkdir()
    (listing / "b.txt").write_text("b")
    (listing / "A.txt").write_text("a")
    (listing / "zdir").mkdir()
    (listing / "<b>&.txt").write_text("x")
    os.symlink(outside / "secret.txt", listing / "link_out")
    os.symlink(root / "hello.txt", listing / "link_in")
    os.symlink(outside / "secret.txt", root / "link_out.txt")
    os.symlink(root / "hello.txt", root / "link_in.txt")
    os.symlink(outside, root / "dir_out")
    # precompressed siblings
    js = b"console.log('compress me');\n" * 100
    (root / "comp.js").write_bytes(js)
    (root / "comp.js.gz").write_bytes(gzip.compress(js))
    (root / "comp.js.br").write_bytes(b"fake-brotli-bytes")
    (root / "onlygz.css").write_bytes(b"body{}" * 50)
    (root / "onlygz.css.gz").write_bytes(gzip.compress(b"body{}" * 50))
    os.mkfifo(root / "fifo")
    (root / "linkdir").mkdir()
    os.symlink(outside / "secret.txt", root / "linkdir" / "index.html")
    return root


class KeepAliveHandler(SimpleHTTPRequestHandler):
    """What the CLI serves with: HTTP/1.1 responses, so connections are kept alive."""

    protocol_version = "HTTP/1.1"


@pytest.fixture(scope="module")
def base_url(tree: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(KeepAliveHandler, directory=str(tree)))
    with running(server):
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def raw(port: int, target: str, method: str = "GET", extra: str = "") -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection with ``Connection: close``; the parsed response."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"
                     .encode("latin-1", "surrogateescape"))
        data = b""
        deadline = time.monotonic() + TIMEOUT
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk or time.monotonic() > deadline:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body


# -- basics -------------------------------------------------------------------------------------


def test_get_file(base_url: str) -> None:
    r = get(base_url + "/hello.txt")
    assert r.status_code == 200
    assert r.content == b"hello world\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Content-Length"] == "12"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert re.fullmatch(r'"[0-9a-f-]+"', r.headers["ETag"])
    assert r.headers["Last-Modified"].endswith(" GMT")


def test_head_matches_get_without_body(port: int) -> None:
    status, fields, body = raw(port, "/hello.txt", method="HEAD")
    assert status == 200 and body == b""
    assert fields["content-length"] == "12"


def test_big_file_intact(base_url: str) -> None:
    r = get(base_url + "/big.bin")
    assert r.status_code == 200
    assert len(r.content) == BIG_SIZE
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(BIG).digest()


def test_empty_file(base_url: str) -> None:
    r = get(base_url + "/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("x.wasm", "application/wasm"),
        ("data.json", "application/json"),
        ("pic.svg", "image/svg+xml"),
        ("pic.webp", "image/webp"),
        ("pic.avif", "image/avif"),
        ("font.woff2", "font/woff2"),
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(base_url: str, name: str, ctype: str) -> None:
    assert get(f"{base_url}/{name}").headers["Content-Type"] == ctype


@pytest.mark.parametrize(
    "path", ["/with%20space.txt", "/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt",
             "/%3Cscript%3Ealert(1)%3Cscript%3E.html"])
def test_odd_names(base_url: str, path: str) -> None:
    assert get(base_url + path).status_code == 200


def test_non_utf8_name_round_trips(base_url: str) -> None:
    assert get(base_url + "/raw%FF.txt").content == b"not utf-8 name\n"


def test_absolute_form_target(port: int) -> None:
    status, _fields, body = raw(port, "http://t/hello.txt")
    assert status == 200 and body == b"hello world\n"


def test_index_page(base_url: str) -> None:
    r = get(base_url + "/sub/")
    assert r.status_code == 200 and r.text == "<h1>sub index</h1>"


def test_missing_is_404(base_url: str) -> None:
    assert get(base_url + "/nope.txt").status_code == 404


def test_file_with_trailing_slash_is_404(base_url: str) -> None:
    assert get(base_url + "/hello.txt/").status_code == 404


def test_fifo_is_404_not_hang(port: int) -> None:
    assert raw(port, "/fifo")[0] == 404


def test_post_is_not_implemented(port: int) -> None:
    status, _fields, _body = raw(port, "/hello.txt", method="POST", extra="Content-Length: 0\r\n")
    assert status == 501


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_is_403(tree: Path, base_url: str) -> None:
    p = tree / "private.txt"
    p.write_text("x")
    p.chmod(0)
    try:
        assert get(base_url + "/private.txt").status_code == 403
    finally:
        p.unlink()


# -- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/sub", "/sub/"),
        ("/sub?a=1&b=2", "/sub/?a=1&b=2"),
        ("//sub", "/sub/"),
        ("/listing", "/listing/"),
    ],
)
def test_directory_redirect(port: int, target: str, location: str) -> None:
    status, fields, _body = raw(port, target)
    assert status == 301
    assert fields["location"] == location


def test_redirect_never_scheme_relative(tree: Path, port: int) -> None:
    evil = tree / "evil.com"
    evil.mkdir(exist_ok=True)
    # Each is the directory "evil.com" without its slash (gh-87389): redirected, and always
    # to a path on this server, never to a scheme-relative "//evil.com/". A raw backslash is
    # outside the URI grammar: the parser's 400 (RFC 9112 section 3.2), no redirect at all.
    for target, status_location in (("//evil.com", (301, "/evil.com/")),
                                    ("/\\evil.com", (400, None)),
                                    ("///evil.com", (301, "/evil.com/")),
                                    ("/%2F%2Fevil.com", (301, "/%2F%2Fevil.com/"))):
        status, fields, _body = raw(port, target)
        assert (status, fields.get("location")) == status_location, target


# -- listing ----------------------------------------------------------------------------------------


def test_listing(base_url: str) -> None:
    r = get(base_url + "/listing/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    page = r.text
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page and "<title>Index of /listing/</title>" in page
    names = re.findall(r'<a href="([^"]+)">', page.partition("<tbody>")[2])
    assert names == ["../", "zdir/", "%3Cb%3E%26.txt", "A.txt", "b.txt", "link_in"]
    assert "&lt;b&gt;&amp;.txt" in page
    assert "link_out" not in page  # points outside the root: hidden


def test_root_listing_escapes_script_name(base_url: str) -> None:
    page = get(base_url + "/").text
    assert 'href="%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt">\u00fcn\u00efc\u00f6d\u00e9.txt<' in page
    assert 'href="raw%FF.txt">raw\ufffd.txt<' in page
    assert 'href="with%20space.txt"' in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;script&gt;.html" in page
    assert 'href="../"' not in page


# -- traversal and hostile paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E%2Foutside%2Fsecret.txt",
        "/sub/..%2f..%2foutside/secret.txt",
        "/..%5coutside%5csecret.txt",
        "/..\\outside\\secret.txt",
        "/%2e%2e%5coutside%5csecret.txt",
        "/link_out.txt",
        "/dir_out/secret.txt",
        "/dir_out/",
        "/listing/link_out",
        "/linkdir/",
        "/C:/Windows/win.ini",
        "/%2Fetc%2Fpasswd",
    ],
)
def test_nothing_outside_root(port: int, target: str) -> None:
    status, _fields, body = raw(port, target)
    assert status in (400, 404), (target, status)
    assert b"TOP SECRET" not in body


def test_double_encoding_stays_literal(port: int) -> None:
    status, _fields, body = raw(port, "/%252e%252e")
    assert status == 200 and body == b"literal percent name\n"


def test_nul_is_400(port: int) -> None:
    assert raw(port, "/hello.txt%00.png")[0] == 400


def test_symlink_inside_is_served(base_url: str) -> None:
    assert get(base_url + "/link_in.txt").content == b"hello world\n"
    assert get(base_url + "/listing/link_in").content == b"hello world\n"


def test_follow_symlinks_option(tree: Path) -> None:
    handler = type("H", (SimpleHTTPRequestHandler,), {"follow_symlinks": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tree)))
    with running(server):
        port = server.server_address[1]
        assert raw(port, "/link_out.txt")[2] == b"TOP SECRET\n"
        assert raw(port, "/%2e%2e/outside/secret.txt")[0] == 404  # still no ".."


def test_hostile_requests_do_not_leak_fds(port: int) -> None:
    raw(port, "/hello.txt")  # warm up the server's threads and sockets
    before = open_fds()
    for target in ("/fifo", "/link_out.txt", "/%00", "/nope", "/big.bin"):
        raw(port, target, extra="Range: bytes=0-10\r\n")
    deadline = time.monotonic() + 3
    while open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= before


# -- validators and conditional requests --------------------------------------------------------


def test_if_none_match_304(base_url: str) -> None:
    etag = get(base_url + "/hello.txt").headers["ETag"]
    r = get(base_url + "/hello.txt", **{"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag
    assert get(base_url + "/hello.txt", **{"If-None-Match": "W/" + etag}).status_code == 304
    assert get(base_url + "/hello.txt", **{"If-None-Match": "*"}).status_code == 304
    assert get(base_url + "/hello.txt", **{"If-None-Match": '"nope"'}).status_code == 200


def test_if_modified_since(base_url: str) -> None:
    lm = get(base_url + "/hello.txt").headers["Last-Modified"]
    assert get(base_url + "/hello.txt", **{"If-Modified-Since": lm}).status_code == 304
    old = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert get(base_url + "/hello.txt", **{"If-Modified-Since": old}).status_code == 200
    # If-None-Match wins when both are present
    r = get(base_url + "/hello.txt", **{"If-Modified-Since": lm, "If-None-Match": '"x"'})
    assert r.status_code == 200


def test_if_match_and_unmodified_since_412(base_url: str) -> None:
    etag = get(base_url + "/hello.txt").headers["ETag"]
    assert get(base_url + "/hello.txt", **{"If-Match": '"other"'}).status_code == 412
    assert get(base_url + "/hello.txt", **{"If-Match": etag}).status_code == 200
    old = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert get(base_url + "/hello.txt", **{"If-Unmodified-Since": old}).status_code == 412


# -- ranges ---------------------------------------------------------------------------------------


def test_single_ranges(base_url: str) -> None:
    url = base_url + "/big.bin"
    for spec, first, last in (("0-99", 0, 99), ("100-", 100, BIG_SIZE - 1),
                              ("-100", BIG_SIZE - 100, BIG_SIZE - 1)):
        r = get(url, Range=f"bytes={spec}")
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{BIG_SIZE}"
        assert r.content == BIG[first : last + 1]


def test_multiple_ranges(base_url: str) -> None:
    r = get(base_url + "/big.bin", Range="bytes=0-9, 1000-1999, -5")
    assert r.status_code == 206
    m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.headers["Content-Type"])
    assert m
    assert int(r.headers["Content-Length"]) == len(r.content)
    boundary = m.group(1).encode()
    parts = r.content.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    bodies = [p.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n") for p in parts[1:-1]]
    assert bodies == [BIG[0:10], BIG[1000:2000], BIG[-5:]]
    assert b"Content-Range: bytes 1000-1999/" in r.content


def test_overlapping_ranges_coalesced(base_url: str) -> None:
    r = get(base_url + "/hello.txt", Range="bytes=0-4,2-6,3-8")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 0-8/12" and r.content == b"hello wor"


def test_too_many_ranges_ignored(base_url: str) -> None:
    spec = ",".join(f"{i}-{i}" for i in range(0, 40, 2))
    r = get(base_url + "/hello.txt", Range=f"bytes={spec}")
    assert r.status_code == 200 and r.content == b"hello world\n"


def test_unsatisfiable_416(base_url: str) -> None:
    r = get(base_url + "/hello.txt", Range="bytes=100-200")
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */12"


def test_invalid_range_ignored(base_url: str) -> None:
    for value in ("bytes=5-1", "bytes=x-y", "lines=1-2", "bytes"):
        r = get(base_url + "/hello.txt", Range=value)
        assert r.status_code == 200 and r.content == b"hello world\n", value


def test_if_range(base_url: str) -> None:
    first = get(base_url + "/hello.txt")
    etag, lm = first.headers["ETag"], first.headers["Last-Modified"]
    assert get(base_url + "/hello.txt", Range="bytes=0-1", **{"If-Range": etag}).status_code == 206
    assert get(base_url + "/hello.txt", Range="bytes=0-1", **{"If-Range": lm}).status_code == 206
    r = get(base_url + "/hello.txt", Range="bytes=0-1", **{"If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == b"hello world\n"


def test_head_ignores_range(port: int) -> None:
    status, fields, body = raw(port, "/hello.txt", method="HEAD", extra="Range: bytes=0-1\r\n")
    assert status == 200 and body == b"" and fields["content-length"] == "12"


# -- precompressed siblings ----------------------------------------------------------------------


def test_precompressed_gzip(base_url: str) -> None:
    r = requests.get(base_url + "/comp.js", headers={"Accept-Encoding": "gzip"},
                     timeout=TIMEOUT, stream=True)
    raw_body = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Vary"] == "Accept-Encoding"
    assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert gzip.decompress(raw_body) == b"console.log('compress me');\n" * 100


def test_precompressed_br_preferred_and_q0(base_url: str) -> None:
    r = get(base_url + "/comp.js", **{"Accept-Encoding": "gzip, br"})
    assert r.headers["Content-Encoding"] == "br"
    r = get(base_url + "/comp.js", **{"Accept-Encoding": "br;q=0, gzip;q=0"})
    assert "Content-Encoding" not in r.headers
    assert r.headers["Vary"] == "Accept-Encoding"
    assert r.content == b"console.log('compress me');\n" * 100


def test_precompressed_own_etag_and_ranges(port: int) -> None:
    _s, plain, _b = raw(port, "/comp.js", extra="Accept-Encoding: identity\r\n")
    _s, gz, _b = raw(port, "/comp.js", extra="Accept-Encoding: gzip\r\n")
    assert plain["etag"] != gz["etag"]
    status, fields, body = raw(port, "/comp.js", extra="Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n")
    assert status == 206 and body == b"\x1f\x8b" and fields["content-encoding"] == "gzip"


def test_no_sibling_no_vary(base_url: str) -> None:
    assert "Vary" not in get(base_url + "/hello.txt", **{"Accept-Encoding": "gzip"}).headers


# -- keep-alive and curl ----------------------------------------------------------------------------


def test_keep_alive_many_requests(tree: Path) -> None:
    """18 requests of five kinds through one ``requests`` session: each gets exactly its own
    answer, and the connections are reused (only the 404, which closes, opens a new one)."""
    seen: list[tuple[str, int]] = []

    class Recording(KeepAliveHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.client_address[1]))
            super().do_GET()

    listing = ["../", "zdir/", "%3Cb%3E%26.txt", "A.txt", "b.txt", "link_in"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Recording, directory=str(tree)))
    paths = ("/hello.txt", "/big.bin", "/nope", "/listing/", "/sub", "/hello.txt") * 3
    with running(server), requests.Session() as s:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path in paths:
            r = s.get(base + path, timeout=TIMEOUT, allow_redirects=False,
                      headers={"Range": "bytes=0-3"} if path == "/big.bin" else {})
            got = (path, r.status_code)
            if path == "/hello.txt":
                assert (r.status_code, r.content) == (200, b"hello world\n"), got
            elif path == "/big.bin":
                assert (r.status_code, r.content) == (206, BIG[:4]), got
                assert r.headers["Content-Range"] == f"bytes 0-3/{BIG_SIZE}"
            elif path == "/nope":
                assert r.status_code == 404, got
                assert b"<p>Error code: 404</p>" in r.content
                assert r.headers["Connection"] == "close"
            elif path == "/listing/":
                assert r.status_code == 200, got
                rows = r.text.partition("<tbody>")[2]
                assert re.findall(r'<a href="([^"]+)">', rows) == listing
            else:
                assert (r.status_code, r.content) == (301, b""), got
                assert r.headers["Location"] == "/sub/"
    assert [p for p, _port in seen] == list(paths)  # each request reached the handler once
    # 18 requests, 4 connections: the first 3 on one, then 6 each (a 404 ends each run).
    runs = [len(list(g)) for _port, g in itertools.groupby(port for _p, port in seen)]
    assert runs == [3, 6, 6, 3], runs


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_curl_big_file_and_range(base_url: str, tmp_path: Path) -> None:
    out = tmp_path / "big"
    subprocess.run([CURL_BIN, "-sS", "--max-time", "10", "-o", str(out), base_url + "/big.bin"],
                   check=True, timeout=15)
    assert out.read_bytes() == BIG
    result = subprocess.run(
        [CURL_BIN, "-sS", "--max-time", "10", "-r", "10-19", "-D", "-", base_url + "/big.bin"],
        check=True, timeout=15, capture_output=True)
    assert b"206" in result.stdout.split(b"\r\n", 1)[0]
    assert result.stdout.endswith(BIG[10:20])


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_curl_path_as_is_traversal(base_url: str) -> None:
    result = subprocess.run(
        [CURL_BIN, "-sS", "--max-time", "10", "--path-as-is", "-o", "-", "-w", "%{http_code}",
         base_url + "/../../outside/secret.txt"],
        timeout=15, capture_output=True)
    assert result.stdout.endswith(b"404") and b"SECRET" not in result.stdout


def test_subclass_with_stdlib_style_send_head(tree: Path) -> None:
    class Handler(SimpleHTTPRequestHandler):
        def copyfile(self, source: Any, outputfile: Any) -> None:
            shutil.copyfileobj(source, outputfile)  # stdlib-style: reads the FileBody

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tree)))
    with running(server):
        port = server.server_address[1]
        status, _f, body = raw(port, "/big.bin", extra="Range: bytes=0-9,20-29\r\n")
        assert status == 206 and BIG[20:30] in body and BIG[0:10] in body
        assert raw(port, "/big.bin")[2] == BIG


# -- body transport: zero-copy sendfile, buffered fallback ---------------------------------------


def test_big_file_goes_through_sendfile(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from minihttp import _writer as _io

    calls: list[tuple[int, int | None]] = []
    original = _io.ResponseWriter.sendfile

    def spy(self: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
        calls.append((offset, count))
        return original(self, file, offset, count)

    monkeypatch.setattr(_io.ResponseWriter, "sendfile", spy)
    assert get(base_url + "/big.bin").content == BIG
    assert calls == [(0, BIG_SIZE)]
    calls.clear()
    assert get(base_url + "/hello.txt").content == b"hello world\n"
    assert calls == []  # small bodies leave with the head in one send


class _FakeSocket:
    """Just enough of a socket for a socketless handler (as the stdlib's tests do): a
    BytesIO rfile, and ``sendall`` collecting what the stdlib-style SocketWriter sends."""

    family = socket.AF_UNIX  # not TCP: no TCP_NODELAY attempted

    def __init__(self, request: bytes) -> None:
        self.rfile = io.BytesIO(request)
        self.out = bytearray()

    def makefile(self, mode: str, *args: Any) -> io.BytesIO:
        assert "r" in mode
        return self.rfile

    def sendall(self, data: bytes) -> None:
        self.out += data


def _socketless(tree: Path, request: bytes) -> bytes:
    fake = _FakeSocket(request)
    SimpleHTTPRequestHandler(fake, ("127.0.0.1", 1), SimpleNamespace(), directory=str(tree))
    return bytes(fake.out)


def test_socketless_bytesio_fallback(tree: Path) -> None:
    out = _socketless(tree, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and body == BIG
    out = _socketless(tree, b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-10,0-9\r\n"
                      b"Connection: close\r\n\r\n")
    assert b"206" in out.split(b"\r\n", 1)[0]
    assert BIG[:10] in out and BIG[-10:] in out


def test_unopenable_file_is_403(tree: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = str(tree / "hello.txt")
    real_open = os.open

    def deny(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == target:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)  # the module static.py calls
    assert get(base_url + "/hello.txt").status_code == 403


def test_501_carries_allow(port: int) -> None:
    status, fields, _body = raw(port, "/hello.txt", method="DELETE")
    assert status == 501
    assert {m.strip() for m in fields["allow"].split(",")} >= {"GET", "HEAD"}


def test_h11_strict_client_keepalive_sequence(port: int, base_url: str) -> None:
    """Every kind of response, in a row on one connection, parsed by h11 (strict framing)."""
    h11 = pytest.importorskip("h11")
    etag = get(base_url + "/hello.txt").headers["ETag"]
    requests_to_send: list[tuple[str, str, list[tuple[str, str]], int]] = [
        ("GET", "/hello.txt", [], 200),
        ("HEAD", "/big.bin", [], 200),
        ("GET", "/hello.txt", [("If-None-Match", etag)], 304),
        ("GET", "/big.bin", [("Range", "bytes=0-9,100-109")], 206),
        ("GET", "/big.bin", [("Range", "bytes=-3")], 206),
        ("GET", "/hello.txt", [("Range", "bytes=99-")], 416),
        ("GET", "/listing", [], 301),
        ("GET", "/listing/", [], 200),
        ("GET", "/empty.txt", [], 200),
        ("GET", "/comp.js", [("Accept-Encoding", "br")], 200),
        ("GET", "/nope", [], 404),  # send_error closes the connection (as http.server)
    ]
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        for method, target, fields, expected in requests_to_send:
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break  # the server closes after an error response, as http.server does
            sock.sendall(conn.send(h11.Request(method=method, target=target,
                                               headers=[("Host", "t"), *fields])))
            sock.sendall(conn.send(h11.EndOfMessage()))
            status = None
            body = b""
            for _ in range(100_000):
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            assert status == expected, (method, target, status)
            if method == "HEAD" or expected == 304:
                assert body == b""
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
    assert status == 404  # the whole sequence ran
