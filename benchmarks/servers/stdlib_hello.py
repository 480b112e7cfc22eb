"""Hello world on the standard library's ThreadingHTTPServer (the baseline to beat).

Keep this file identical to minihttp_hello.py except for the marked import lines: the point of
the comparison is that the same handler code runs on both.

    python3 benchmarks/servers/stdlib_hello.py --port 8080
"""

from __future__ import annotations

import argparse
from typing import Any

# isort: split
# --- import (the only lines that differ from minihttp_hello.py) ---
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


if __name__ == "__main__":
    main()
