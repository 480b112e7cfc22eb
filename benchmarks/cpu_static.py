"""CPU cost of one keep-alive GET of a small static file in minihttp, without a network.

The companion of cpu_hello.py for ``minihttp.static.handler``: it drives ``handle_one_request`` of
the static handler (benchmarks/servers/minihttp_static.py) over a fake socket that always
holds one whole ``GET /file4k`` head (the fields wrk sends), drops every response write,
and reports the best of several runs of process CPU time (user + system) per request.

What is real and what is not, so the figure stays honest:

* The file system is real: a 4 KiB file of random bytes in a temporary directory, served
  through the same ``lstat`` / ``open`` / ``access`` calls as with wrk; their system time is
  in the figure. The file is made older than ``_smallfiles.RACY_SECONDS`` before measuring
  (the script waits), as files on a real site are, so the small-file cache may take it.
* The network is not: ``recv`` returns the head and ``sendall`` drops the bytes, so socket
  system calls are left out (they belong to server.py's budget and to wrk runs). A 4 KiB
  body is below ``static.SENDFILE_MIN``: it leaves with the head in one ``sendall`` on a real
  socket too, and ``sendfile`` is never involved, so nothing needs a real fd here.
* The first response is checked (status 200, Content-Length, the file's bytes) before any
  timing. Every request is the same bytes, as wrk sends them: so, as with wrk, a repeated
  head is answered without parsing (:mod:`minihttp.static.hit`, one remembered head per
  connection, checked against the file system on every request). ``--parse`` turns that
  off, for the figure of a head that is parsed (a client whose heads differ).

    python3 benchmarks/cpu_static.py [--requests N] [--runs N] [--no-cache] [--subdir]
                                     [--parse] [--profile]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minihttp_static  # type: ignore[import-not-found]

from benchmarks._fakesock import FakeServer, FakeSocket, cpu_per_request
from minihttp.static.cache import RACY_SECONDS

FILE_NAME = "file4k"
FILE_SIZE = 4 * 1024
#: The URL path served; ``--subdir`` moves the file one directory down (``/static/file4k``).
URL_PATH = "/" + FILE_NAME
HEAD = b"GET %s HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
REQUEST = HEAD % URL_PATH.encode()


def _never(self: Any, head: bytes) -> bool:
    return False


def handler_class(cache: bool, parse: bool = False) -> type:
    """The benchmark server's handler, with or without the small-file cache (and with every
    head parsed: ``parse``)."""
    cls: type = minihttp_static.StaticHandler
    if not cache:
        cls = type("NoCacheHandler", (cls,), {"small_file_cache": None})
    if parse:
        cls = type("ParseHandler", (cls,), {"_answer_repeat": _never})
    return cls


def make_root() -> tuple[tempfile.TemporaryDirectory[str], bytes]:
    """A directory with the file, aged past the racy window (its ctime cannot be set back)."""
    tmp = tempfile.TemporaryDirectory(prefix="cpu_static-")
    data = os.urandom(FILE_SIZE)
    path = Path(tmp.name + URL_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ctime = max(path.stat().st_ctime, path.parent.stat().st_ctime)
    time.sleep(max(0.0, ctime + RACY_SECONDS + 0.2 - time.time()))
    return tmp, data


def attach(cls: Any, root: str, sock: FakeSocket, pair: socket.socket) -> Any:
    handler = cls.attach(pair, ("127.0.0.1", 1), FakeServer())
    handler.directory = root
    handler.reader.sock = sock
    handler._writer.sock = sock
    return handler


def check(cls: type, root: str, data: bytes) -> None:
    """One request with the bytes kept: it must be a 200 carrying exactly the file."""
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        sock = FakeSocket(REQUEST, keep=True)
        attach(cls, root, sock, a).handle_one_request()
        out = b"".join(sock.sent or [])
        head, _, body = out.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 ") or body != data or (
                b"\r\nContent-Length: %d\r\n" % len(data)) not in head + b"\r\n":
            raise SystemExit(f"unexpected response to the fake request: {out[:300]!r}")
    finally:
        a.close()
        b.close()


def per_request(cls: type, root: str, n: int) -> float:
    """Seconds of process CPU time per request over ``n`` requests on one connection."""
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        handler = attach(cls, root, FakeSocket(REQUEST), a)
        return cpu_per_request(handler, n)
    finally:
        a.close()
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-cache", action="store_true",
                        help="without the small-file cache (open/fstat/read/close per request)")
    parser.add_argument("--subdir", action="store_true",
                        help="serve /static/file4k (one directory below the root)")
    parser.add_argument("--parse", action="store_true",
                        help="parse every head (no repeated-head answers)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run instead")
    args = parser.parse_args()
    if args.subdir:
        global URL_PATH, REQUEST
        URL_PATH = "/static/" + FILE_NAME
        REQUEST = HEAD % URL_PATH.encode()
    cls = handler_class(not args.no_cache, args.parse)
    tmp, data = make_root()
    with tmp:
        root = tmp.name
        check(cls, root, data)
        per_request(cls, root, 2_000)  # warm caches
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(per_request, cls, root, args.requests)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            return
        best = min(per_request(cls, root, args.requests) for _ in range(args.runs))
    label = ("no cache" if args.no_cache else "cached") + ", " + URL_PATH
    if args.parse:
        label += ", parsed"
    print(f"minihttp static 4 KiB ({label}): {best * 1e6:.2f} us of CPU per request "
          f"(best of {args.runs} x {args.requests})")


if __name__ == "__main__":
    main()
