"""Hello world on minihttp: stdlib_hello.py with only the import changed.

Everything between the import block and the ``__main__`` block is identical to
stdlib_hello.py (tests/benchmarks/test_smoke.py checks it): code written for http.server must
run on minihttp after changing only its imports. ``--pool`` serves with
``minihttp.eventloop.PooledHTTPServer`` instead of ``ThreadingHTTPServer``; ``--log cli`` or
``--log stderr`` turns the access log on (see :func:`run`).

    python3 benchmarks/servers/minihttp_hello.py --port 8080 [--pool] [--log cli|stderr]
"""

from __future__ import annotations

import argparse
from typing import Any

# isort: split
# --- import (the only lines that differ from stdlib_hello.py) ---
try:
    from minihttp.server import BaseHTTPRequestHandler, ThreadingHTTPServer
except ImportError as exc:  # minihttp is being written; say so instead of a traceback
    raise SystemExit(f"minihttp.server does not import: {exc}") from None

# --- end import ---

BODY = b"Hello World\n"


class HelloHandler(BaseHTTPRequestHandler):
    """Answer every GET with a 12-byte text/plain body, keep-alive."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_server(port: int, server_class: Any = ThreadingHTTPServer) -> Any:
    """The server bound to 127.0.0.1:``port`` with :class:`HelloHandler`."""
    return server_class(("127.0.0.1", port), HelloHandler)


def main(server_class: Any = ThreadingHTTPServer) -> None:
    """Parse ``--port`` and serve forever."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with make_server(args.port, server_class) as httpd:
        httpd.serve_forever()


# --- end of the code shared by stdlib_hello.py and minihttp_hello.py ---


def run(main: Any, handler: Any = None) -> None:
    """Call ``main()``, or ``main(PooledHTTPServer)`` when ``--pool`` is on the command line.

    ``--log cli`` / ``--log stderr`` turn the access log of ``handler`` (default
    :class:`HelloHandler`) on by removing its ``log_message`` override: with logging set
    up as ``python -m minihttp`` does (a batching handler on standard error), or left
    alone as a library program leaves it (http.server's line on ``sys.stderr``).
    """
    import sys

    if "--log" in sys.argv:
        at = sys.argv.index("--log")
        mode = sys.argv[at + 1] if at + 1 < len(sys.argv) else ""
        del sys.argv[at:at + 2]
        if mode not in ("cli", "stderr"):
            raise SystemExit("--log takes cli or stderr")
        del (handler or HelloHandler).log_message
        if mode == "cli":
            from minihttp import logs

            logs.configure()
    if "--pool" in sys.argv:
        sys.argv.remove("--pool")
        from minihttp.eventloop import PooledHTTPServer

        main(PooledHTTPServer)
    else:
        main()


if __name__ == "__main__":
    run(main)
