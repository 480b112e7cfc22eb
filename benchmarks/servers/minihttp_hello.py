"""Hello world on minihttp: stdlib_hello.py with only the import changed.

Everything between the import block and the ``__main__`` block is identical to
stdlib_hello.py (tests/benchmarks/test_smoke.py checks it): code written for http.server must
run on minihttp after changing only its imports. ``--pool`` serves with
``minihttp.eventloop.PooledHTTPServer`` instead of ``ThreadingHTTPServer``.

    python3 benchmarks/servers/minihttp_hello.py --port 8080 [--pool]
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


def run(main: Any) -> None:
    """Call ``main()``, or ``main(PooledHTTPServer)`` when ``--pool`` is on the command line."""
    import sys

    if "--pool" in sys.argv:
        sys.argv.remove("--pool")
        from minihttp.eventloop import PooledHTTPServer

        main(PooledHTTPServer)
    else:
        main()


if __name__ == "__main__":
    run(main)
