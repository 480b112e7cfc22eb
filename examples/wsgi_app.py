"""A plain WSGI application (no framework) served by minihttp's gateway.

Run it from the repository's root with the one command::

    python -m minihttp wsgi examples.wsgi_app:application 8000

or as a script (``make_server``, the ``wsgiref.simple_server`` way)::

    python examples/wsgi_app.py 8000

Then: ``curl localhost:8000/`` (hello), ``curl -d 'some text' localhost:8000/echo`` (the
body read from ``wsgi.input``), ``curl -N localhost:8000/count`` (a streamed answer: each
line is sent as it is made, chunked), ``curl localhost:8000/source`` (this file, sent with
``sendfile`` through ``wsgi.file_wrapper``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def _count() -> Iterator[bytes]:
    for i in range(5):
        yield f"{i}\n".encode()
        time.sleep(0.2)


def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Route on PATH_INFO; every branch is a PEP 3333 response."""
    path = environ["PATH_INFO"]
    text = [("Content-Type", "text/plain; charset=utf-8")]
    if path == "/":
        body = f"Hello from {environ['SERVER_SOFTWARE']} to {environ['REMOTE_ADDR']}\n"
        start_response("200 OK", text)
        return [body.encode()]
    if path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        data = environ["wsgi.input"].read()  # exactly the body (chunked decoded)
        start_response("200 OK", text)
        return [data]
    if path == "/count":
        start_response("200 OK", text)  # no Content-Length: sent chunked, block by block
        return _count()
    if path == "/source":
        start_response("200 OK", text)
        wrapper = environ["wsgi.file_wrapper"]
        source = open(Path(__file__), "rb")  # noqa: SIM115 - the gateway calls close()
        blocks: Iterable[bytes] = wrapper(source, 65536)
        return blocks
    start_response("404 Not Found", text)
    return [b"not found\n"]


def main() -> None:
    from minihttp.wsgi import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, application) as server:
        print(f"Serving on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
