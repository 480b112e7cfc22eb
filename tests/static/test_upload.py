"""Uploads end to end (minihttp.static.upload): real servers on 127.0.0.1 port 0, both kinds
(ThreadingHTTPServer and PooledHTTPServer, the CLI's), clients ``requests`` and raw sockets.

Every socket has a timeout and every wait is bounded (``wait_for``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from minihttp import cli
from minihttp.config import DEFAULT_LIMITS
from minihttp.eventloop import PooledHTTPServer
from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.static.upload import UploadMixin
from tests.helpers.servers import open_fds, running, wait_for

TIMEOUT = 10.0
KINDS = [ThreadingHTTPServer, PooledHTTPServer]


class Handler(UploadMixin):
    protocol_version = "HTTP/1.1"
    stored: list[str] = []  # log lines about stored files, per test class

    def log_message(self, format: str, *args: Any) -> None:
        line = format % args
        if line.startswith("upload stored"):
            self.stored.append(line)


Serve = Callable[..., str]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "root"
    (site / "sub").mkdir(parents=True)
    (site / "existing.txt").write_bytes(b"old contents\n")
    (site / "adir").mkdir()
    (tmp_path / "outside").mkdir()
    (site / "escape").symlink_to(tmp_path / "outside")
    return site


@pytest.fixture(params=KINDS, ids=lambda k: k.__name__)
def serve(request: pytest.FixtureRequest, root: Path) -> Iterator[Serve]:
    """``serve(**handler_attrs)``: start a server of this kind over ``root``; its URL."""
    with contextlib.ExitStack() as stack:
        def start(**attrs: Any) -> str:
            attrs.setdefault("stored", [])
            handler = type("TestUploadHandler", (Handler,), attrs)
            server = request.param(("127.0.0.1", 0), partial(handler, directory=str(root)))
            stack.enter_context(running(server))
            start.handler = handler  # type: ignore[attr-defined]
            return f"http://127.0.0.1:{server.server_address[1]}"
        yield start


def leftovers(root: Path) -> list[str]:
    """Temporary files anywhere under root."""
    return [str(p) for p in root.rglob("*.part")]


def put(url: str, data: bytes | Iterator[bytes], **headers: str) -> requests.Response:
    return requests.put(url, data=data, headers=headers, timeout=TIMEOUT, allow_redirects=False)


def form(url: str, files: list[tuple[str, bytes]], **kw: Any) -> requests.Response:
    return requests.post(url, files=[("file", (n, d)) for n, d in files], timeout=TIMEOUT,
                         allow_redirects=False, **kw)


def raw(port: int, head: bytes, body: bytes = b"", close: bool = False,
        want: int = 1) -> bytes:
    """Send ``head`` + ``body``; read until EOF (or ``want`` responses' heads)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(head + body)
        if close:
            return b""
        data = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and data.count(b"HTTP/1.1 ") < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- PUT -------------------------------------------------------------------------------------


def test_put_creates_201_with_location(serve: Serve, root: Path) -> None:
    url = serve()
    body = os.urandom(200_000)
    r = put(url + "/sub/r%C3%A9sum%C3%A9%20%231.bin", body)
    assert r.status_code == 201
    assert r.headers["Location"] == "/sub/r%C3%A9sum%C3%A9%20%231.bin"
    assert (root / "sub" / "résumé #1.bin").read_bytes() == body
    assert requests.get(url + r.headers["Location"], timeout=TIMEOUT).content == body
    assert serve.handler.stored == ['upload stored "/sub/r%C3%A9sum%C3%A9%20%231.bin" '  # type: ignore[attr-defined]
                                    "(200000 bytes)"]
    assert leftovers(root) == []


def test_put_chunked_and_empty(serve: Serve, root: Path) -> None:
    url = serve()
    r = put(url + "/chunked.bin", iter([b"a" * 70_000, b"b" * 5, b"c"]))
    assert r.status_code == 201
    assert (root / "chunked.bin").read_bytes() == b"a" * 70_000 + b"bbbbbc"
    assert put(url + "/empty", b"").status_code == 201
    assert (root / "empty").read_bytes() == b""


def test_no_overwrite_without_allow_replace(serve: Serve, root: Path) -> None:
    url = serve()
    r = put(url + "/existing.txt", b"new")
    assert r.status_code == 409 and "exists" in r.text
    assert (root / "existing.txt").read_bytes() == b"old contents\n"
    assert leftovers(root) == []


def test_replace_when_allowed(serve: Serve, root: Path) -> None:
    url = serve(upload_allow_replace=True)
    r = put(url + "/existing.txt", b"new")
    assert r.status_code == 204 and r.headers["Location"] == "/existing.txt"
    assert (root / "existing.txt").read_bytes() == b"new"
    assert put(url + "/fresh", b"x").status_code == 201


@pytest.mark.parametrize(("target", "status", "why"), [
    ("/adir", 409, "directory"),
    ("/adir/", 409, "directory"),
    ("/", 409, "directory"),
    ("/missing/x", 409, "does not exist"),
    ("/existing.txt/x", 409, "does not exist"),
    ("/escape/x", 404, ""),
    ("/../x", 404, ""),
    ("/%2e%2e/x", 404, ""),
    ("/.hidden", 400, "dot"),
    ("/.git/config", 400, "dot"),
    ("/CON.txt", 400, "reserved"),
    ("/a%0Ab", 400, "control"),
    ("/a%00b", 400, ""),
    ("/" + "n" * 256, 400, "255"),
    ("/bad%FFutf8", 400, "UTF-8"),
])
def test_put_refusals(serve: Serve, root: Path, target: str, status: int, why: str) -> None:
    url = serve()
    before = sorted(str(p) for p in root.parent.rglob("*"))
    reply = raw(port_of(url), f"PUT {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
                .encode(), b"hello")
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
    assert why.encode() in reply
    assert sorted(str(p) for p in root.parent.rglob("*")) == before


def test_put_without_length_is_411(serve: Serve) -> None:
    reply = raw(port_of(serve()), b"PUT /x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411 ")


def test_partial_put_is_refused(serve: Serve, root: Path) -> None:
    r = put(serve() + "/part", b"abc", **{"Content-Range": "bytes 0-2/10"})
    assert r.status_code == 400 and "Content-Range" in r.text
    assert not (root / "part").exists()


def test_declared_size_over_the_limit_is_413_before_reading(serve: Serve, root: Path) -> None:
    url = serve(upload_max_size=1000)
    # The client waits for 100 Continue: it must get the 413 instead, without sending.
    reply = raw(port_of(url), b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n"
                b"Expect: 100-continue\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]
    assert b"100 Continue" not in reply
    assert put(url + "/fits", b"x" * 1000).status_code == 201
    assert not (root / "big").exists() and leftovers(root) == []


def test_existing_name_is_409_before_reading(serve: Serve, root: Path) -> None:
    reply = raw(port_of(serve()), b"PUT /existing.txt HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 409 "), reply[:100]
    assert b"100 Continue" not in reply


def test_streamed_size_over_the_limit_is_413(serve: Serve, root: Path) -> None:
    url = serve(upload_max_size=100_000)
    r = put(url + "/big", iter([b"x" * 60_000] * 3))  # chunked: no length to check first
    assert r.status_code == 413
    assert wait_for(lambda: leftovers(root) == [])
    assert not (root / "big").exists()
    r = form(url + "/", [("a", b"1" * 60_000), ("b", b"2" * 60_000)])
    assert r.status_code == 413
    assert wait_for(lambda: leftovers(root) == [])
    assert not (root / "a").exists() and not (root / "b").exists()


def test_short_body_leaves_nothing(serve: Serve, root: Path) -> None:
    url = serve()
    raw(port_of(url), b"PUT /short HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n",
        b"x" * 50_000, close=True)
    assert wait_for(lambda: leftovers(root) == [] and not (root / "short").exists())


@pytest.mark.parametrize("what", ["put", "form"])
def test_client_leaving_mid_upload_leaves_no_file_and_no_fd(serve: Serve, root: Path,
                                                            what: str) -> None:
    url = serve()
    raw(port_of(url), b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    # (the first connection makes a server set up what it keeps: not counted as a leak)
    fds = open_fds()
    boundary = b"b0undary"
    if what == "put":
        head = b"PUT /gone HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"
        start = b""
    else:
        start = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                 b'filename="gone"\r\n\r\n')
        head = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary="
                + boundary + b"\r\nContent-Length: 10000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock:
        sock.sendall(head + start + b"y" * 300_000)
        assert wait_for(lambda: len(leftovers(root)) == 1, timeout=TIMEOUT)  # it was streaming
    assert wait_for(lambda: leftovers(root) == [], timeout=TIMEOUT)
    assert not (root / "gone").exists()
    assert wait_for(lambda: open_fds() <= fds, timeout=TIMEOUT)


def test_upload_on_its_way_is_invisible(serve: Serve, root: Path) -> None:
    """While a PUT streams, its temporary file is neither listed nor served."""
    url = serve()
    head = b"PUT /coming HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock:
        sock.sendall(head + b"y" * 300_000)
        assert wait_for(lambda: len(leftovers(root)) == 1, timeout=TIMEOUT)
        temp = Path(leftovers(root)[0]).name
        listing = requests.get(url + "/", timeout=TIMEOUT).text
        assert temp not in listing and urllib.parse.quote(temp) not in listing
        got = requests.get(url + "/" + urllib.parse.quote(temp), timeout=TIMEOUT)
        assert got.status_code == 404 and b"y" * 100 not in got.content
    assert wait_for(lambda: leftovers(root) == [], timeout=TIMEOUT)


@pytest.mark.parametrize("replace", [False, True])
def test_concurrent_uploads_of_one_name(serve: Serve, root: Path, replace: bool) -> None:
    url = serve(upload_allow_replace=replace)
    bodies = [bytes([65 + i]) * 300_000 for i in range(6)]
    statuses: list[int] = []
    lock = threading.Lock()

    def pieces(body: bytes) -> Iterator[bytes]:
        yield body[:150_000]
        # Finish only when every upload is streaming (past the early existence check),
        # so they really race to the final name.
        wait_for(lambda: len(leftovers(root)) == len(bodies), timeout=TIMEOUT)
        yield body[150_000:]

    def upload(body: bytes) -> None:
        status = put(url + "/same.bin", pieces(body)).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=upload, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert len(statuses) == len(bodies)
    if replace:
        assert set(statuses) <= {201, 204} and statuses.count(201) >= 1
    else:
        assert sorted(statuses) == [201] + [409] * (len(bodies) - 1)
    assert (root / "same.bin").read_bytes() in bodies  # one whole body, never a mix
    assert wait_for(lambda: leftovers(root) == [])


# -- the form ----------------------------------------------------------------------------------


def test_listing_has_the_form(serve: Serve) -> None:
    page = requests.get(serve() + "/sub/", timeout=TIMEOUT).text
    assert ('<form method="post" enctype="multipart/form-data" class="upload">'
            '<input type="file" name="file" multiple required> '
            '<button type="submit">Upload</button></form>') in page


def test_form_stores_several_files_and_redirects_to_the_listing(serve: Serve,
                                                                 root: Path) -> None:
    url = serve()
    big = os.urandom(300_000)
    r = form(url + "/sub/?sort=name", [("one.txt", b"first\r\n"), ("two <b>.bin", big)])
    assert r.status_code == 303 and r.headers["Location"] == "/sub/?sort=name"
    assert "two &lt;b&gt;.bin" in r.text and "300000 bytes" in r.text
    assert '<a href="/sub/two%20%3Cb%3E.bin">' in r.text
    assert (root / "sub" / "one.txt").read_bytes() == b"first\r\n"
    assert (root / "sub" / "two <b>.bin").read_bytes() == big
    assert sorted(serve.handler.stored) == [  # type: ignore[attr-defined]
        'upload stored "/sub/one.txt" (7 bytes)',
        'upload stored "/sub/two%20%3Cb%3E.bin" (300000 bytes)']
    followed = requests.post(url + "/sub/", files=[("file", ("three", b"3"))], timeout=TIMEOUT)
    assert followed.status_code == 200 and "three" in followed.text  # the listing
    assert leftovers(root) == []


def test_form_is_all_or_nothing(serve: Serve, root: Path) -> None:
    url = serve()
    r = form(url + "/", [("new.txt", b"n"), ("existing.txt", b"e")])
    assert r.status_code == 409
    assert not (root / "new.txt").exists()
    assert (root / "existing.txt").read_bytes() == b"old contents\n"
    r = form(url + "/", [("ok.txt", b"n"), ("../evil", b"e")])
    assert r.status_code == 400 and "/" in r.text
    r = form(url + "/", [("dup", b"1"), ("dup", b"2")])
    assert r.status_code == 400 and "twice" in r.text
    assert not (root / "ok.txt").exists() and not (root / "dup").exists()
    assert leftovers(root) == []


def test_form_conflict_at_commit_undoes_the_files_stored(serve: Serve, root: Path) -> None:
    """A name taken while the form streams (after its early check) fails the whole form,
    and the files of the form already given their names are removed again."""
    url = serve()
    reply = form_taken_midway(url, root, [b"late1", b"late2"],
                              lambda: (root / "late2").write_bytes(b"someone else"))
    assert reply.startswith(b"HTTP/1.1 409 "), reply[:100]
    assert not (root / "late1").exists()
    assert (root / "late2").read_bytes() == b"someone else"
    assert wait_for(lambda: leftovers(root) == [])


def test_form_conflict_keeps_files_it_replaced(serve: Serve, root: Path) -> None:
    url = serve(upload_allow_replace=True)
    reply = form_taken_midway(url, root, [b"existing.txt", b"new", b"late"],
                              lambda: (root / "late").mkdir())
    assert reply.startswith(b"HTTP/1.1 409 "), reply[:100]
    assert (root / "existing.txt").read_bytes() == b"x" * 1000  # replaced: stays
    assert not (root / "new").exists()  # created: taken back
    assert wait_for(lambda: leftovers(root) == [])


def form_taken_midway(url: str, root: Path, names: list[bytes],
                      meanwhile: Callable[[], object]) -> bytes:
    """Post a form of ``names`` (1000 bytes of ``x`` each; the last one is longer, and the
    body over 64 KiB, so the pooled server hands it to a worker before it is all in); run
    ``meanwhile`` once all are streaming, before the last one ends; the reply's start."""
    b = b"bnd"
    first = b"\r\n".join(
        b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="' + name
        + b'"\r\n\r\n' + b"x" * (1000 if name != names[-1] else 70_000) for name in names)
    rest = b"x" * 1000 + b"\r\n--" + b + b"--\r\n"
    head = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=bnd"
            b"\r\nContent-Length: " + str(len(first) + len(rest)).encode() + b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock:
        sock.sendall(head + first)
        assert wait_for(lambda: len(leftovers(root)) == len(names), timeout=TIMEOUT)
        meanwhile()
        sock.sendall(rest)
        return sock.recv(65536)


def test_form_skips_empty_file_inputs_and_fields(serve: Serve, root: Path) -> None:
    body = (b"--XX\r\nContent-Disposition: form-data; name=file; filename=\"\"\r\n\r\n\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=note\r\n\r\nhello\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=file; filename=real\r\n\r\nR\r\n"
            b"--XX--\r\n")
    r = requests.post(serve() + "/", data=body, timeout=TIMEOUT, allow_redirects=False,
                      headers={"Content-Type": "multipart/form-data; boundary=XX"})
    assert r.status_code == 303 and "Stored 1 file:" in r.text
    assert (root / "real").read_bytes() == b"R"
    assert not (root / "note").exists()


@pytest.mark.parametrize(("body", "ctype", "status"), [
    (b"--XX\r\nContent-Disposition: form-data; name=file; filename=t\r\n\r\nabc", "XX", 400),
    (b"--XX\r\nContent-Disposition: form-data; name=file; filename=\"\"\r\n\r\n\r\n--XX--",
     "XX", 400),
    (b"--XX\r\nContent-Disposition: form-data; name=note\r\n\r\nhi\r\n--XX--", "XX", 400),
    (b"--XX\nContent-Disposition: form-data; name=file; filename=t\n\nabc\n--XX--", "XX", 400),
    (b"a=b", None, 415),
    (b"--XX--", "", 400),
])
def test_bad_forms(serve: Serve, root: Path, body: bytes, ctype: str | None,
                   status: int) -> None:
    url = serve()
    content_type = ("application/x-www-form-urlencoded" if ctype is None
                    else f"multipart/form-data; boundary={ctype}" if ctype
                    else "multipart/form-data")
    r = requests.post(url + "/", data=body, headers={"Content-Type": content_type},
                      timeout=TIMEOUT, allow_redirects=False)
    assert r.status_code == status
    assert not (root / "t").exists() and leftovers(root) == []


def test_post_to_a_file_is_405_with_allow(serve: Serve) -> None:
    r = form(serve() + "/existing.txt", [("x", b"1")])
    assert r.status_code == 405 and "PUT" in r.headers["Allow"]


# -- without uploads, and the command line -----------------------------------------------------


def test_plain_handler_has_no_uploads(root: Path) -> None:
    handler = type("H", (SimpleHTTPRequestHandler,), {"protocol_version": "HTTP/1.1"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    with running(server):
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert put(url + "/x", b"1").status_code == 501
        assert "<form" not in requests.get(url + "/", timeout=TIMEOUT).text
    assert not (root / "x").exists()


def test_cli_options(root: Path) -> None:
    off = cli.build_parser().parse_args(["0", "-b", "127.0.0.1", "-d", str(root)])
    on = cli.build_parser().parse_args(["0", "-b", "127.0.0.1", "-d", str(root), "--upload",
                                        "--allow-replace", "--max-upload", "2G"])
    small = cli.build_parser().parse_args(["0", "-d", str(root), "--upload", "--max-upload",
                                           "10M"])
    assert (on.upload, on.allow_replace, on.max_upload) == (True, True, 2 << 30)
    assert small.max_upload == 10 << 20
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--max-upload", "lots"])
    for args, can_put in ((off, False), (on, True)):
        server = cli.make_server(args)
        with running(server):
            url = f"http://127.0.0.1:{server.server_address[1]}"
            r = put(url + "/cli.txt", b"x")
            assert r.status_code == (201 if can_put else 501)
        if can_put:
            assert server.limits.max_body == 2 << 30  # the server lets 2G bodies through
        else:
            assert server.limits.max_body == DEFAULT_LIMITS.max_body
    assert (root / "cli.txt").read_bytes() == b"x"


# -- durability and the target directory's descriptor -----------------------------------------


def record_fsyncs(monkeypatch: pytest.MonkeyPatch, final: Path
                  ) -> list[tuple[int, bool, int | None]]:
    """Every ``os.fsync`` from now on, as (inode, is a directory, inode at ``final`` then:
    None while the name is absent), in order."""
    calls: list[tuple[int, bool, int | None]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        try:
            visible: int | None = os.lstat(final).st_ino
        except FileNotFoundError:
            visible = None
        calls.append((st.st_ino, stat.S_ISDIR(st.st_mode), visible))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


@pytest.mark.parametrize(("how", "replace"), [("put", False), ("put", True), ("form", False),
                                              ("form", True)])
def test_stored_file_is_synced_before_its_name_and_the_directory_after(
        serve: Serve, root: Path, monkeypatch: pytest.MonkeyPatch, how: str,
        replace: bool) -> None:
    """After a power cut the name must not name an empty or partial file: the contents are
    fsynced while the name does not show them yet, the directory once it does."""
    url = serve(upload_allow_replace=replace)
    final = root / "sub" / "durable.bin"
    if replace:
        final.write_bytes(b"older")
    calls = record_fsyncs(monkeypatch, final)
    body = os.urandom(200_000)
    if how == "put":
        assert put(url + "/sub/durable.bin", body).status_code == (204 if replace else 201)
    else:
        assert form(url + "/sub/", [("durable.bin", body)]).status_code == 303
    assert final.read_bytes() == body
    new = final.stat().st_ino
    directory = (root / "sub").stat().st_ino
    file_syncs = [i for i, (ino, isdir, _) in enumerate(calls) if ino == new and not isdir]
    dir_syncs = [i for i, (ino, isdir, _) in enumerate(calls) if ino == directory and isdir]
    assert file_syncs and dir_syncs, calls
    assert all(calls[i][2] != new for i in file_syncs)  # not yet visible under its name
    assert calls[dir_syncs[-1]][2] == new  # the name, then the directory
    assert max(file_syncs) < dir_syncs[-1]


def test_unreadable_directory_still_takes_uploads(serve: Serve, root: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that may be written but not read (mode 0o300) is opened with O_PATH:
    its fsync is skipped, the upload goes on. (Simulated: tests run as root.)"""
    url = serve()
    real = os.open
    o_path = getattr(os, "O_PATH", 0)
    if not o_path:
        pytest.skip("no O_PATH here")

    def no_read(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & os.O_DIRECTORY and not flags & o_path:
            raise PermissionError(13, "Permission denied", path)
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", no_read)
    assert put(url + "/sub/w.txt", b"write-only").status_code == 201
    assert (root / "sub" / "w.txt").read_bytes() == b"write-only"


def swap_for_link(directory: Path, outside: Path) -> None:
    """What a local attacker does: move the directory away, a symlink out in its place."""
    directory.rename(directory.with_name(directory.name + ".moved"))
    directory.symlink_to(outside)


def test_directory_swapped_after_the_checks_keeps_the_upload_inside(
        serve: Serve, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory is swapped for a symlink out of the root after it was checked and
    opened, before the temporary file is created: the upload lands in the directory that
    was checked (by its descriptor), nothing outside."""
    url = serve()
    outside = root.parent / "outside"
    real = UploadMixin._check_free

    def check_then_swap(self: Any, directory: Any, name: str) -> None:
        swap_for_link(root / "sub", outside)
        real(self, directory, name)

    monkeypatch.setattr(UploadMixin, "_check_free", check_then_swap)
    assert put(url + "/sub/x.txt", b"inside").status_code == 201
    assert list(outside.iterdir()) == []
    assert (root / "sub.moved" / "x.txt").read_bytes() == b"inside"


def test_directory_swapped_before_the_walk_is_refused(
        serve: Serve, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapped after its path was resolved and found inside, before it was opened: the
    walk from the root (O_NOFOLLOW on each segment) meets the link and refuses (404)."""
    from minihttp.static import staging

    url = serve()
    outside = root.parent / "outside"
    real = staging._open_dir
    swapped: list[bool] = []

    def swap_then_open(name: str, dir_fd: int | None, flags: int) -> int:
        if not swapped:
            swapped.append(True)
            swap_for_link(root / "sub", outside)
        return real(name, dir_fd, flags)

    monkeypatch.setattr(staging, "_open_dir", swap_then_open)
    assert put(url + "/sub/x.txt", b"elsewhere?").status_code == 404
    assert swapped and list(outside.iterdir()) == []
    assert list((root / "sub.moved").iterdir()) == []
