"""The WSGI applications bench_wsgi.py serves on every server (``MODULE:NAME`` targets).

    python -m minihttp wsgi benchmarks.servers.wsgi_apps:hello 8080 -q
    python -m minihttp wsgi benchmarks.servers.wsgi_apps:flask_app 8080 -q

``hello`` is the trivial WSGI hello (12 bytes, the same answer as minihttp_hello.py's
handler: the gateway's own cost); ``flask_app`` a Flask hello (the issue's measure);
``blocking`` answers ``/slow`` after sleeping 50 ms (a database call) and ``/fast`` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

BODY = b"Hello World\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The trivial WSGI hello."""
    start_response("200 OK", HEADERS)
    return [BODY]


def blocking(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/slow`` sleeps 50 ms (a blocking call), anything else answers at once."""
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.05)
    start_response("200 OK", HEADERS)
    return [BODY]


def _flask() -> Any:
    try:
        from flask import Flask
    except ImportError:  # the benchmark reports it; importing this module must not fail
        return None
    app = Flask("bench")

    @app.get("/")
    def index() -> str:
        return "Hello World\n"

    return app


flask_app = _flask()
