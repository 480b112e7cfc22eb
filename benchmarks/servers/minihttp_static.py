"""Static files on minihttp: stdlib_static.py with only the imports changed.

``minihttp.static.SimpleHTTPRequestHandler`` on ``minihttp.server.ThreadingHTTPServer``
(``--pool``: on ``minihttp.pool.PooledHTTPServer``), with the same handler settings as the
stdlib side so the comparison is of the serving code alone.

    python3 benchmarks/servers/minihttp_static.py --port 8080 --directory DIR [--pool]
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

# isort: split
# --- import (the only lines that differ from stdlib_static.py) ---
try:
    from minihttp.server import ThreadingHTTPServer
    from minihttp.static import SimpleHTTPRequestHandler
except ImportError as exc:  # minihttp is being written; say so instead of a traceback
    raise SystemExit(f"minihttp.server/minihttp.static do not import: {exc}") from None

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


def pooled_server_class() -> Any:
    """``minihttp.pool.PooledHTTPServer``, or exit with a clear message if it is missing."""
    try:
        from minihttp.pool import PooledHTTPServer  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise SystemExit(f"--pool: minihttp.pool.PooledHTTPServer is not available: {exc}"
                         ) from None
    return PooledHTTPServer


if __name__ == "__main__":
    import sys

    if "--pool" in sys.argv:
        sys.argv.remove("--pool")
        main(pooled_server_class())
    else:
        main()
