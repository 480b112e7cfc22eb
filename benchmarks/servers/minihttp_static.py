"""Static files on minihttp: stdlib_static.py with only the imports changed.

``minihttp.static.handler.SimpleHTTPRequestHandler`` on ``minihttp.server.ThreadingHTTPServer``
(``--pool``: on ``minihttp.eventloop.PooledHTTPServer``), with the same handler settings as the
stdlib side so the comparison is of the serving code alone. ``--log cli|stderr``: the access
log on (see ``minihttp_hello.run``); ``--compress``: compression on the fly
(``SimpleHTTPRequestHandler.compress``).

    python3 benchmarks/servers/minihttp_static.py --port 8080 --directory DIR [--pool]
                                                  [--log cli|stderr] [--compress]
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
    raise SystemExit(f"minihttp.server/minihttp.static.handler do not import: {exc}") from None

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
    import sys

    from minihttp_hello import run  # type: ignore[import-not-found]  # same folder

    if "--compress" in sys.argv:  # compression on the fly, as python -m minihttp --compress
        sys.argv.remove("--compress")
        StaticHandler.compress = True
    run(main, StaticHandler)
