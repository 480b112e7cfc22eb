"""Run a WSGI application (PEP 3333: Flask, Django, ...) on minihttp.

::

    from minihttp.wsgi import make_server
    with make_server("127.0.0.1", 8000, app) as server:   # PooledHTTPServer by default
        server.serve_forever()

or from the command line: ``python -m minihttp wsgi MODULE:APP [port]``.

The package is split by idea: ``gateway`` (the handler: start_response, write, iteration,
close, errors), ``environ`` (building the environ), ``repeat`` (a connection's environ: what
its requests share, and what a repeated head or repeated field lines reuse), ``response``
(checking what the application answers, and its fields as they go on the wire), ``body``
(``wsgi.input`` and ``wsgi.file_wrapper``), ``app`` (loading ``MODULE:APP`` for the command
line).
"""

from __future__ import annotations

from typing import Any

from .app import AppLoadError, load_app, load_object
from .body import FileWrapper
from .gateway import StartResponse, WSGIApplication, WSGIRequestHandler, make_handler

__all__ = [
    "AppLoadError",
    "FileWrapper",
    "StartResponse",
    "WSGIApplication",
    "WSGIRequestHandler",
    "load_app",
    "load_object",
    "make_handler",
    "make_server",
]


def make_server(host: str, port: int, app: WSGIApplication, server_class: Any = None,
                handler_class: type[WSGIRequestHandler] = WSGIRequestHandler, *,
                root_path: str = "") -> Any:
    """A bound, listening server for ``app`` (as ``wsgiref.simple_server.make_server``).

    ``server_class`` defaults to :class:`~minihttp.eventloop.PooledHTTPServer`;
    :class:`~minihttp.server.ThreadingHTTPServer` works too.
    """
    if server_class is None:
        from ..eventloop import PooledHTTPServer

        server_class = PooledHTTPServer
    return server_class((host, port), make_handler(app, root_path=root_path,
                                                   base=handler_class))
