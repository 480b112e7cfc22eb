"""Static files on the standard library: SimpleHTTPRequestHandler on ThreadingHTTPServer.

HTTP/1.1 (keep-alive), Nagle off, access log silenced: the stdlib at its best, so the
comparison is with its serving code and not with its console logging.

    python3 benchmarks/servers/stdlib_static.py --port 8080 --directory DIR
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

# isort: split
# --- import (the only lines that differ from minihttp_static.py) ---
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

# --- end import ---


class StaticHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler, keep-alive, no Nagle, no access log."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(server_class: Any = ThreadingHTTPServer) -> None:
    """Parse ``--port`` and ``--directory`` and serve forever."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", required=True)
    args = parser.parse_args()
    handler = functools.partial(StaticHandler, directory=args.directory)
    with server_class(("127.0.0.1", args.port), handler) as httpd:
        httpd.serve_forever()


# --- end of the code shared by stdlib_static.py and minihttp_static.py ---


if __name__ == "__main__":
    main()
