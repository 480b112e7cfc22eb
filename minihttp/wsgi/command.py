"""``python -m minihttp wsgi MODULE:APP [port]`` and ``python -m minihttp run MODULE:HANDLER``.

Run anyone's application from one command: a WSGI application (Flask, Django, ...) through
the gateway, or a :class:`~minihttp.server.BaseHTTPRequestHandler` subclass as it is. Both
take the production options of the file server (:func:`minihttp.cli.add_server_arguments`:
``-b``, ``--workers``, ``--threads``, ``--tls-cert/--tls-key``, ``--forwarded-allow-ips``,
``--graceful-timeout``, ...) and are bound and run by the same code (:func:`minihttp.cli.serve`).

Rules of this module:

* The application is loaded once, before the server binds and before ``--workers`` forks
  (the workers share it copy-on-write): a failure to load it is one line on stderr and exit
  status 2, and no client ever sees it.
* The default address is 127.0.0.1 (an application server usually sits behind a proxy; as
  gunicorn and uvicorn do); ``-b 0.0.0.0`` or ``-b ::`` exposes it.
* Without ``--threads`` requests are served on the event loop itself (the fastest for an
  application that computes and answers). ``--threads N`` says the application blocks
  (a database, another service): every request then runs on one of N pool threads and the
  loop only moves bytes. Measured (a WSGI app sleeping 50 ms per request, wrk -c64, one
  process): on the loop, each blocking request holds it until the watchdog hands it over,
  ~2-4 ms, so about 235 req/s whatever N; on N=64 pool threads 1,249-1,262 req/s (0.98 of
  the 1,280 ideal), p99 54-76 ms. A Flask hello loses little on the pool (9.4k against
  9.6-10.5k req/s, same run): the framework's own CPU dominates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .. import cli
from ..server import BaseHTTPRequestHandler, HTTPServer
from .admission import with_admission
from .app import AppLoadError, load_app, load_object
from .environ import normalize_root
from .gateway import make_handler
from .reload import run_with_reload

__all__ = ["build_run_parser", "build_wsgi_parser", "main_run", "main_wsgi"]

DEFAULT_BIND = "127.0.0.1"


def _root_path(text: str) -> str:
    try:
        normalize_root(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parser(prog: str, what: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m minihttp {prog}", description=description,
        epilog="Stop with Ctrl-C or SIGTERM; in-flight responses are finished first. "
        "With --workers, SIGHUP replaces the workers gracefully.")
    parser.add_argument("target", metavar=what,
                        help=f"{what} as MODULE:NAME, MODULE:factory() or "
                        "MODULE:factory('literal', arg=1); the current directory is importable")
    parser.add_argument("port", nargs="?", type=cli.parse_port, default=8000,
                        help="port to listen on (default 8000; 0 picks a free port)")
    cli.add_server_arguments(
        parser, default_bind=DEFAULT_BIND,
        threads_help="the application blocks (database, network): serve every request on "
        "one of N pool threads, N about the requests that may wait at once, and up to N/4 "
        "more while all N wait (default: "
        "requests are served on the event loop, best for applications that only compute)")
    parser.set_defaults(bind=DEFAULT_BIND)
    parser.add_argument("--limit-concurrency", type=_count, default=0, metavar="N",
                        help="answer 503 with Retry-After past N requests in progress in a "
                        "process (default: no limit)")
    parser.add_argument("--max-requests", type=_count, default=0, metavar="N",
                        help="with --workers: a worker finishes what it serves and is "
                        "replaced after N requests (bounds slow leaks; default: never)")
    parser.add_argument("--max-requests-jitter", type=_count, default=0, metavar="J",
                        help="add a random 0..J to each worker's --max-requests (so they do "
                        "not restart together)")
    parser.add_argument("--reload", action="store_true",
                        help="development: restart when a .py file under the current "
                        "directory changes")
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_wsgi_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m minihttp wsgi``."""
    parser = _parser("wsgi", "MODULE:APP",
                     "Serve a WSGI application (PEP 3333: Flask, Django, ...) over HTTP/1.1.")
    parser.add_argument("--root-path", type=_root_path, default="", metavar="PATH",
                        help="the application is mounted at PATH (e.g. /app): requests under "
                        "it get SCRIPT_NAME=PATH, others 404 (default: /)")
    return parser


def build_run_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m minihttp run``."""
    return _parser("run", "MODULE:HANDLER",
                   "Serve a minihttp BaseHTTPRequestHandler subclass (do_GET, do_POST, ...).")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _announcer(label: str) -> Any:
    def announce(server: HTTPServer, args: argparse.Namespace) -> None:
        tls = bool(getattr(server, "ssl_context", None))
        print(f"Serving {'HTTPS' if tls else 'HTTP'} on {cli.server_url(server)} "
              f"({label} {args.target}) ...", flush=True)

    return announce


def _serve(args: argparse.Namespace, handler: Any, label: str) -> int:
    handler = with_admission(handler, limit_concurrency=args.limit_concurrency,
                             max_requests=args.max_requests,
                             max_requests_jitter=args.max_requests_jitter)

    def make(parsed: argparse.Namespace) -> HTTPServer:
        attrs: dict[str, Any] = {"wsgi_multiprocess": bool(getattr(parsed, "workers", None))}
        if parsed.threads:
            attrs["inline"] = False  # see the module's rules: an application that blocks
        return cli.build_server(parsed, handler, attrs)

    return cli.serve(args, make=make, announce=_announcer(label))


def _reload_or_problem(name: str, argv: Sequence[str] | None,
                       args: argparse.Namespace) -> int | None:
    """The exit status when the command is done here (``--reload``, a bad combination);
    None to go on and serve."""
    if args.max_requests and not args.workers:
        return _error("--max-requests needs --workers (a supervisor replaces the worker)")
    if args.reload:
        rest = [a for a in (sys.argv[2:] if argv is None else argv) if a != "--reload"]
        return run_with_reload([name, *rest])
    return None


def main_wsgi(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m minihttp wsgi``; the exit status."""
    args = build_wsgi_parser().parse_args(argv)
    done = _reload_or_problem("wsgi", argv, args)
    if done is not None:
        return done
    try:
        app = load_app(args.target)
    except AppLoadError as exc:
        return _error(str(exc))
    return _serve(args, make_handler(app, root_path=args.root_path), "application")


def main_run(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m minihttp run``; the exit status."""
    args = build_run_parser().parse_args(argv)
    done = _reload_or_problem("run", argv, args)
    if done is not None:
        return done
    try:
        handler = load_object(args.target)
    except AppLoadError as exc:
        return _error(str(exc))
    problem = _not_a_handler(handler)
    if problem:
        return _error(f"{args.target!r} {problem}")
    return _serve(args, handler, "handler")


def _not_a_handler(obj: Any) -> str:
    """Why ``obj`` is not a handler class minihttp can serve ("" if it is)."""
    if not isinstance(obj, type):
        return f"is not a class (it is a {type(obj).__name__}); name a BaseHTTPRequestHandler " \
               "subclass"
    if issubclass(obj, BaseHTTPRequestHandler):
        return ""
    if any(base.__module__ == "http.server" for base in obj.__mro__):
        return ("subclasses http.server's BaseHTTPRequestHandler: import it from "
                "minihttp.server instead (the rest of the code runs unchanged)")
    return "is not a BaseHTTPRequestHandler subclass (from minihttp.server)"
