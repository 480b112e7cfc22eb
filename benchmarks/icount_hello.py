"""Instructions per hello request under callgrind, quiet or with the access log on.

Wall-clock figures on the shared 2-core machine do not resolve a microsecond; instruction
counts do not depend on the load. This runs cpu_hello's handler over its fake socket (no
system calls) ``n`` times, with the access log off (``quiet``: the hello handler's own
``log_message`` does nothing) or set up as ``python -m minihttp`` does (``cli``), the log
writer's batch held to the end and written once. Count it twice and take the difference
per request (what the process does once, start-up and the final write of the log, cancels
out but for the formatting of the extra lines, which is part of the cost)::

    PY=$(python3 -c 'import sys; print(sys.executable)')  # not a pyenv shim (a script)
    ic() { PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
           $PY benchmarks/icount_hello.py "$@" 2>&1 >/dev/null \\
           | grep -o "Collected : [0-9]*" | grep -o "[0-9]*$"; }
    echo $(( ($(ic cli 6000) - $(ic cli 1000)) / 5000 ))

A figure moves by up to ~0.8k with the memory layout (seen: an unused class attribute
added to BaseHTTPRequestHandler moved quiet by 0.8k; so does the hash seed): compare
means over PYTHONHASHSEED=0..3 of cli minus quiet.
With the default RECHECK the figure also depends on how slow valgrind runs (how many
requests come more than a millisecond apart, each paying the route's full check).

``--recheck S`` sets :data:`minihttp.logs.RECHECK`: under valgrind a request takes over a
millisecond, so the route's full check (at most once a millisecond for real) runs on every
request; ``--recheck 1e9`` leaves it out. ``--out FILE`` writes the lines to FILE (appended)
instead of /dev/null.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minihttp_hello  # type: ignore[import-not-found]

from benchmarks._fakesock import FakeServer, FakeSocket
from benchmarks.cpu_hello import REQUEST
from minihttp import logs
from minihttp.server import BaseHTTPRequestHandler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["quiet", "cli"])
    parser.add_argument("requests", type=int)
    parser.add_argument("--recheck", type=float, default=None)
    parser.add_argument("--out", default="/dev/null")
    args = parser.parse_args()
    cls = minihttp_hello.HelloHandler
    if args.mode == "cli":
        cls = type("LoggingHelloHandler", (cls,),
                   {"log_message": BaseHTTPRequestHandler.log_message})
        logs.configure(fd=os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        for handler in logs.package_log.handlers:
            if isinstance(handler, logs.LineHandler):
                handler.writer.delay = 1000.0  # the batch held to the end
    if args.recheck is not None:
        logs.RECHECK = args.recheck
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        handler = cls.attach(a, ("127.0.0.1", 1), FakeServer())
        handler.reader.sock = FakeSocket(REQUEST)
        handler._writer.sock = FakeSocket(REQUEST)
        one = handler.handle_one_request
        for _ in range(args.requests):
            one()
    finally:
        a.close()
        b.close()
    for log_handler in logs.package_log.handlers:
        log_handler.flush()


if __name__ == "__main__":
    main()
