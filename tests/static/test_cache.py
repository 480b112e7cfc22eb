"""The speed paths of the static handler stay correct when files and symlinks change.

Covers :mod:`minihttp.static.cache` (in-memory small files, revalidated by ``lstat``) and
:func:`minihttp.static.paths.open_beneath` (containment checked with ``O_NOFOLLOW``). Servers bind
127.0.0.1 port 0; every request has a timeout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import requests

from minihttp.server import ThreadingHTTPServer
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.static import cache as _smallfiles
from minihttp.static.cache import SmallFileCache
from minihttp.static.paths import NotFound, dirs_plain, open_beneath
from tests.helpers.servers import running

TIMEOUT = 5.0
FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> SmallFileCache:
    """A fresh cache that stores files at once (no racy delay), so hits are exercised."""
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    return SmallFileCache(max_file=64 * 1024)


@pytest.fixture
def site(tmp_path: Path, cache: SmallFileCache) -> Iterator[tuple[Path, str, SmallFileCache]]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"SECRET")
    (outside / "sub" / "a.txt").write_bytes(b"SECRET-A")
    (root / "a.txt").write_bytes(b"first")
    (root / "sub" / "a.txt").write_bytes(b"sub-a")

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        small_file_cache = cache

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    with running(server):
        yield root, f"http://127.0.0.1:{server.server_address[1]}", cache


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT)


def _tick() -> None:
    time.sleep(0.05)  # past the file system's timestamp granularity (a few ms at most)


def test_small_file_is_cached_then_served_from_memory(site: tuple[Path, str, SmallFileCache]
                                                      ) -> None:
    root, url, cache = site
    assert _get(url + "/a.txt").content == b"first"
    assert cache.get(str(root / "a.txt"), os.lstat(root / "a.txt")) == b"first"
    r = _get(url + "/a.txt")
    assert r.content == b"first" and r.headers["Content-Length"] == "5"
    assert r.headers["ETag"] and r.headers["Last-Modified"]
    etag = r.headers["ETag"]
    r304 = requests.get(url + "/a.txt", headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert r304.status_code == 304 and r304.content == b""
    r206 = requests.get(url + "/a.txt", headers={"Range": "bytes=1-2"}, timeout=TIMEOUT)
    assert r206.status_code == 206 and r206.content == b"ir"


def test_rewrite_same_size_is_seen(site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/a.txt").content == b"first"
    _tick()
    with open(root / "a.txt", "r+b") as f:  # in place: same inode, same size
        f.write(b"FIRST")
    assert _get(url + "/a.txt").content == b"FIRST"


def test_replace_by_rename_is_seen(site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/a.txt").content == b"first"
    (root / "new").write_bytes(b"other")
    os.replace(root / "new", root / "a.txt")
    assert _get(url + "/a.txt").content == b"other"


def test_cached_file_replaced_by_escaping_symlink_is_404(
        site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/a.txt").content == b"first"
    os.unlink(root / "a.txt")
    os.symlink(root.parent / "outside" / "secret.txt", root / "a.txt")
    r = _get(url + "/a.txt")
    assert r.status_code == 404 and b"SECRET" not in r.content


def test_directory_replaced_by_escaping_symlink_is_404(
        site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/sub/a.txt").content == b"sub-a"
    os.rename(root / "sub", root / "sub.old")
    os.symlink(root.parent / "outside" / "sub", root / "sub")
    r = _get(url + "/sub/a.txt")
    assert r.status_code == 404 and b"SECRET" not in r.content


def test_inside_symlink_still_served(site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    os.symlink(root / "a.txt", root / "link.txt")
    assert _get(url + "/link.txt").content == b"first"
    assert _get(url + "/link.txt").content == b"first"


def test_deleted_cached_file_is_404(site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/a.txt").status_code == 200
    os.unlink(root / "a.txt")
    assert _get(url + "/a.txt").status_code == 404


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_chmod_of_cached_file_is_403(site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, _cache = site
    assert _get(url + "/a.txt").status_code == 200
    os.chmod(root / "a.txt", 0)
    try:
        assert _get(url + "/a.txt").status_code == 403
    finally:
        os.chmod(root / "a.txt", 0o644)


def test_head_from_cache_has_no_body(site: tuple[Path, str, SmallFileCache]) -> None:
    _root, url, _cache = site
    _get(url + "/a.txt")
    r = requests.head(url + "/a.txt", timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Length"] == "5" and r.content == b""


# -- SmallFileCache units -----------------------------------------------------------------------


def test_racily_clean_file_is_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = os.stat(path)
    cache = SmallFileCache()
    assert not cache.put(str(path), st, b"abc", now=st.st_ctime_ns / 1e9 + 0.5)
    assert cache.get(str(path), st) is None
    assert cache.put(str(path), st, b"abc", now=st.st_ctime_ns / 1e9 + 10)
    assert cache.get(str(path), st) == b"abc"


def test_identity_change_misses(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = os.stat(path)
    cache = SmallFileCache()
    assert cache.put(str(path), st, b"abc", now=time.time() + 10)
    _tick()
    os.chmod(path, 0o600)  # changes only the ctime
    assert cache.get(str(path), os.stat(path)) is None


def test_bounds(tmp_path: Path) -> None:
    later = time.time() + 10
    cache = SmallFileCache(max_file=4, max_total=8)
    paths = []
    for i in range(3):
        p = tmp_path / str(i)
        p.write_bytes(b"1234")
        paths.append((str(p), os.stat(p)))
    big = tmp_path / "big"
    big.write_bytes(b"12345")
    assert not cache.put(str(big), os.stat(big), b"12345", later)  # over max_file
    assert not cache.put(paths[0][0], paths[0][1], b"123", later)  # not the whole file
    assert cache.put(*paths[0], b"1234", later) and cache.put(*paths[1], b"1234", later)
    assert cache.put(*paths[2], b"1234", later)  # over max_total: emptied, then stored
    assert cache.get(*paths[0]) is None and cache.get(*paths[2]) == b"1234"


# -- open_beneath units ---------------------------------------------------------------------------


def test_open_beneath(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"in")
    (tmp_path / "secret").write_bytes(b"out")
    os.symlink(root / "d" / "f", root / "link_in")
    os.symlink(tmp_path / "secret", root / "link_out")
    os.symlink(tmp_path, root / "dir_out")
    r = str(root)
    for name, expected in (("d/f", b"in"), ("link_in", b"in")):
        fd = open_beneath(os.path.join(r, name), r, FLAGS)
        assert fd is not None
        try:
            assert os.read(fd, 10) == expected
        finally:
            os.close(fd)
    for name in ("link_out", "dir_out/secret", "d/../link_out"):
        with pytest.raises(NotFound):
            open_beneath(os.path.join(r, name), r, FLAGS)
    with pytest.raises(FileNotFoundError):
        open_beneath(os.path.join(r, "missing"), r, FLAGS)
    assert open_beneath(str(tmp_path / "secret"), r, FLAGS) is None  # not under root
    assert dirs_plain(os.path.join(r, "d", "f"), r) is True
    assert dirs_plain(os.path.join(r, "dir_out", "secret"), r) is False
    assert dirs_plain(str(tmp_path / "secret"), r) is None


# -- siblings proven absent by the directory's identity -------------------------------------


def _meta(cache: SmallFileCache, path: Path) -> object:
    hit = cache.lookup(str(path), os.lstat(path))
    assert hit is not None, "the file should be cached"
    return hit[1]


def test_no_sibling_proof_is_kept_for_a_file_in_a_directory(
        site: tuple[Path, str, SmallFileCache]) -> None:
    root, url, cache = site
    assert _get(url + "/sub/a.txt").content == b"sub-a"
    assert _meta(cache, root / "sub" / "a.txt").no_siblings is not None  # type: ignore[attr-defined]
    r = _get(url + "/sub/a.txt")  # served with the proof: no Vary, identity body
    assert r.content == b"sub-a" and "Vary" not in r.headers


@pytest.mark.parametrize("how", ["create", "rename", "hardlink"])
def test_sibling_appearing_after_caching_is_served(
        site: tuple[Path, str, SmallFileCache], how: str) -> None:
    import gzip

    root, url, _cache = site
    assert _get(url + "/sub/a.txt").content == b"sub-a"
    _tick()
    gz = root / "sub" / "a.txt.gz"
    if how == "create":
        gz.write_bytes(gzip.compress(b"sub-a-gz"))
    else:
        elsewhere = root.parent / "a.txt.gz"
        elsewhere.write_bytes(gzip.compress(b"sub-a-gz"))
        if how == "rename":
            os.replace(elsewhere, gz)
        else:
            os.link(elsewhere, gz)
    r = requests.get(url + "/sub/a.txt", headers={"Accept-Encoding": "gzip"}, timeout=TIMEOUT)
    assert r.headers.get("Content-Encoding") == "gzip" and r.content == b"sub-a-gz"
    assert r.headers.get("Vary") == "Accept-Encoding"
    plain = requests.get(url + "/sub/a.txt", headers={"Accept-Encoding": "identity"},
                         timeout=TIMEOUT)
    assert plain.content == b"sub-a" and plain.headers.get("Vary") == "Accept-Encoding"


def test_dangling_symlink_sibling_gives_no_proof(site: tuple[Path, str, SmallFileCache]) -> None:
    import gzip

    root, url, cache = site
    target = root / "later.gz"  # another directory: creating it leaves sub/ unchanged
    os.symlink(target, root / "sub" / "a.txt.gz")  # dangles: access() says absent
    assert _get(url + "/sub/a.txt").content == b"sub-a"
    assert _meta(cache, root / "sub" / "a.txt").no_siblings is None  # type: ignore[attr-defined]
    _tick()
    target.write_bytes(gzip.compress(b"now-gz"))  # now the link resolves
    r = requests.get(url + "/sub/a.txt", headers={"Accept-Encoding": "gzip"}, timeout=TIMEOUT)
    assert r.headers.get("Content-Encoding") == "gzip" and r.content == b"now-gz"


def test_no_proof_while_the_directory_is_racily_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", 3600.0)
    (tmp_path / "f").write_bytes(b"x")
    handler = SimpleHTTPRequestHandler.__new__(SimpleHTTPRequestHandler)
    assert handler._no_siblings(str(tmp_path / "f")) is None
    monkeypatch.setattr(_smallfiles, "RACY_SECONDS", -3600.0)
    proof = handler._no_siblings(str(tmp_path / "f"))
    assert proof is not None and proof[1] == handler.precompressed
    (tmp_path / "f.br").write_bytes(b"y")
    assert handler._no_siblings(str(tmp_path / "f")) is None
