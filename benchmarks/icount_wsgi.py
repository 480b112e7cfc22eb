"""Instructions per request under callgrind: the WSGI hello through the gateway, or the
handler hello, as ``python -m minihttp wsgi|run ... -q`` serves them (issue 13 item 5).

``bench_wsgi.py --hello`` compares the two on the wall clock (target: the WSGI hello at
least 0.7 of the handler hello's req/s); on the shared 2-core machine that figure swings
with the load, instruction counts do not. This runs one of the two hellos over
benchmarks/_fakesock.py's fake socket (no system calls) ``n`` times:

* ``wsgi``: ``make_handler(benchmarks.servers.wsgi_apps.hello)`` (the class ``python -m
  minihttp wsgi benchmarks.servers.wsgi_apps:hello`` serves; ``--app MODULE:NAME`` for
  another application, e.g. ``benchmarks.servers.wsgi_apps:flask_app``);
* ``handler``: benchmarks/servers/minihttp_hello.py's ``HelloHandler`` (what ``python -m
  minihttp run benchmarks.servers.minihttp_hello:HelloHandler`` serves).

Logging is set up as ``-q`` does (:func:`minihttp.logs.configure` with ``quiet``, lines to
/dev/null): the WSGI handler keeps the default access log, which ``-q`` silences by level;
the hello handler's ``log_message`` does nothing. ``--recheck S`` sets
:data:`minihttp.logs.RECHECK` (under valgrind a request takes over a millisecond, so the
route's full check, for real at most once a millisecond, would run on every request; the
default here, 1e9, leaves it out as a fast server does). The first response is checked
(status, body): a request the handler does not answer as the hello would make the count
meaningless.

``--vary path`` makes every other request another request line with the same field lines
(a browser walking a site), ``--vary fields`` another User-Agent (no request repeats the
one before: the gateway's remembered heads, minihttp/wsgi/repeat.py, never apply); both
hellos get the same requests.

Count each twice and take the difference per request (start-up cancels out). Valgrind must
start the interpreter itself, not a wrapper script such as pyenv's ``python3`` shim (it
would count the shell)::

    PY=$(python3 -c 'import sys; print(sys.executable)')
    ic() { PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
           $PY benchmarks/icount_wsgi.py "$@" 2>&1 >/dev/null \\
           | grep -o "Collected : [0-9]*" | grep -o "[0-9]*$"; }
    echo $(( ($(ic wsgi 6000) - $(ic wsgi 1000)) / 5000 ))

or let the script do it for both and print the gateway's extra cost::

    python3 benchmarks/icount_wsgi.py report [--n 6000 --m 1000] [--vary path|fields]
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._fakesock import FakeServer, FakeSocket
from benchmarks.cpu_hello import REQUEST

HELLO_APP = "benchmarks.servers.wsgi_apps:hello"
BODY = b"Hello World\n"

#: ``--vary``: the request that alternates with cpu_hello's REQUEST. ``path``: another
#: request line, the same field lines (a browser walking a site); ``fields``: another
#: User-Agent, so no request repeats the field lines of the one before (the gateway's
#: remembered fields, minihttp.wsgi.repeat, never apply).
OTHER = {
    "path": REQUEST.replace(b"GET / ", b"GET /other?q=1 "),
    "fields": REQUEST.replace(b"User-Agent: wrk", b"User-Agent: wrk2"),
}


class Alternating(FakeSocket):
    """Reads give ``request`` and ``other`` whole, in turn."""

    def __init__(self, request: bytes, other: bytes) -> None:
        super().__init__(request)
        self.both = (request, other)
        self.reads = 0

    def recv_into(self, buf: Any, n: int = 0) -> int:
        self.request = self.both[self.reads & 1]
        self.reads += 1
        return super().recv_into(buf, n)


def handler_class(kind: str, app: str = HELLO_APP) -> Any:
    """The handler class of ``kind`` (``wsgi``: the gateway for ``app``; ``handler``)."""
    if kind == "handler":
        import minihttp_hello  # type: ignore[import-not-found]

        return minihttp_hello.HelloHandler
    from minihttp.wsgi import make_handler

    module, _, name = app.partition(":")
    return make_handler(getattr(importlib.import_module(module), name))


def serve(kind: str, requests: int, app: str = HELLO_APP,
          recheck: float | None = 1e9, vary: str = "") -> list[bytes]:
    """Serve ``requests`` hello requests over the fake socket; what the first one sent.

    ``vary`` (a key of :data:`OTHER`): every other request is that one."""
    from minihttp import logs

    logs.configure(quiet=True, fd=os.open(os.devnull, os.O_WRONLY))
    if recheck is not None:
        logs.RECHECK = recheck
    cls = handler_class(kind, app)
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        handler = cls.attach(a, ("127.0.0.1", 1), FakeServer())
        reads = handler.reader.sock = (Alternating(REQUEST, OTHER[vary]) if vary
                                       else FakeSocket(REQUEST))
        first = handler._writer.sock = FakeSocket(REQUEST, keep=True)
        one = handler.handle_one_request
        one()
        sent = first.sent or []
        rest = requests - 1
        if vary and rest:  # the other request's answer is checked too
            handler._writer.sock = other = FakeSocket(REQUEST, keep=True)
            one()
            check(other.sent or [], app)
            rest -= 1
        handler._writer.sock = FakeSocket(REQUEST)
        for _ in range(rest):
            one()
        if handler.close_connection:
            raise SystemExit("the connection was closed: the fake request is not understood")
        if vary and reads.reads != requests:  # type: ignore[attr-defined]
            raise SystemExit(f"{reads.reads} reads for {requests} requests: "  # type: ignore[attr-defined]
                             "the requests did not alternate")
    finally:
        a.close()
        b.close()
    return sent


def check(sent: list[bytes], app: str) -> None:
    """Refuse a first response that is not a 200 (and, for the hello, its 12 bytes)."""
    data = b"".join(sent)
    if not data.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"unexpected response: {data[:200]!r}")
    if app == HELLO_APP and not data.endswith(b"\r\n\r\n" + BODY):
        raise SystemExit(f"unexpected hello response: {data!r}")


def count(kind: str, requests: int, app: str, vary: str = "") -> int:
    """Instructions valgrind's callgrind counts for one run of this script."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, kind, str(requests), "--app", app,
            *(["--vary", vary] if vary else [])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="0"))
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def report(n: int, m: int, app: str, vary: str = "") -> None:
    """Per-request instructions of both hellos ((count(n) - count(m)) / (n - m))."""
    per = {kind: (count(kind, n, app, vary) - count(kind, m, app, vary)) / (n - m)
           for kind in ("handler", "wsgi")}
    extra = per["wsgi"] - per["handler"]
    what = f", --vary {vary}" if vary else ""
    print(f"handler hello : {per['handler']:9.0f} instructions per request{what}")
    print(f"WSGI hello    : {per['wsgi']:9.0f} instructions per request ({app}{what})")
    print(f"gateway extra : {extra:9.0f} ({per['wsgi'] / per['handler']:.2f}x the handler's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["wsgi", "handler", "report"])
    parser.add_argument("requests", type=int, nargs="?", default=1000)
    parser.add_argument("--app", default=HELLO_APP, help="MODULE:NAME of the WSGI app")
    parser.add_argument("--recheck", type=float, default=1e9)
    parser.add_argument("--vary", choices=sorted(OTHER), default="",
                        help="every other request is another one (see OTHER)")
    parser.add_argument("--n", type=int, default=6000, help="report: the long run")
    parser.add_argument("--m", type=int, default=1000, help="report: the short run")
    args = parser.parse_args()
    if args.kind == "report":
        report(args.n, args.m, args.app, args.vary)
        return
    if args.requests < 1:
        raise SystemExit("requests must be at least 1")
    check(serve(args.kind, args.requests, args.app, args.recheck, args.vary), args.app)


if __name__ == "__main__":
    main()
