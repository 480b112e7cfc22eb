"""``python -m minihttp``: serve a directory, like ``python -m http.server`` but better.

Same habits (``[port]``, ``-b``, ``-d``, ``-p``), plus HTTPS, extra response headers, a bounded
worker pool, dual-stack IPv4/IPv6 by default, and a clean stop on SIGINT/SIGTERM. A first
argument naming a subcommand (``proxy``) hands the rest of the command line to that mode, so
``python -m minihttp 8080`` and ``python -m minihttp proxy 8080`` both work.

Rules of this module:

* User errors (bad argument, port in use, missing directory, unreadable certificate) are one
  line on stderr and exit status 2 (usage) or 1 (environment), never a traceback.
* Stopping never deadlocks: the signal handler only sets a flag and starts a thread that calls
  ``shutdown()``; the main thread then closes the server, which lets in-flight responses finish.
* The server is :class:`~minihttp.eventloop.PooledHTTPServer` (chosen in one place,
  :func:`server_base`).
* ``--workers N`` binds once and pre-forks N supervised worker processes
  (:mod:`minihttp.prefork`); log lines then start with the worker's pid.
* ``--forwarded-allow-ips`` sets the server's ``forwarded_allow_ips``
  (:mod:`minihttp.forwarded`): behind a trusted proxy, the client is taken from its header.
* At start the soft open-file limit is raised to the hard limit (one descriptor per
  connection; the default soft limit of 1024 is soon reached by a busy server).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from types import FrameType
from typing import Any

from . import __version__, logs, prefork
from .forwarded import FORWARDED, X_FORWARDED_FOR, TrustedProxies
from .http11 import validate_field
from .prefork import _positive
from .server import HTTPServer
from .static import SimpleHTTPRequestHandler

__all__ = [
    "SUBCOMMANDS",
    "CertificateError",
    "build_parser",
    "main",
    "make_server",
    "raise_open_file_limit",
    "run_until_stopped",
    "serve",
    "server_base",
]

#: ``python -m minihttp NAME ...`` runs ``<module>.main(rest_of_argv) -> int``.
SUBCOMMANDS: dict[str, str] = {"proxy": "minihttp.proxy"}

log = logging.getLogger("minihttp.cli")

#: A second SIGINT/SIGTERM this many seconds after the first exits at once.
FORCE_AFTER = 1.0
#: Seconds a client gets to finish its TLS handshake (the worker it holds is freed after).
TLS_HANDSHAKE_TIMEOUT = 10.0


def server_base() -> type[HTTPServer]:
    """The server class the CLI uses: the event-loop server."""
    from .eventloop import PooledHTTPServer

    return PooledHTTPServer


# -- argument parsing ---------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} out of range 0-65535")
    return value



def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    try:
        if not sep:
            raise ValueError("expected NAME:VALUE")
        validate_field(name, value)  # token name, no CR/LF/NUL (header injection)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid header {text!r}: {exc}") from None
    return name, value


def _protocol(text: str) -> str:
    if text not in ("HTTP/1.0", "HTTP/1.1"):
        raise argparse.ArgumentTypeError("must be HTTP/1.0 or HTTP/1.1")
    return text


def _trusted(text: str) -> str:
    try:
        TrustedProxies(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the static file server."""
    parser = argparse.ArgumentParser(
        prog="python -m minihttp",
        description="Serve a directory over HTTP/1.1 (GET and HEAD, with ranges, "
        "conditional requests and directory listings).",
        epilog="Other modes: 'python -m minihttp proxy --help' runs a forward proxy. "
        "Stop with Ctrl-C or SIGTERM; in-flight responses are finished first.",
    )
    parser.add_argument("port", nargs="?", type=_port, default=8000,
                        help="port to listen on (default 8000; 0 picks a free port)")
    parser.add_argument("-b", "--bind", metavar="ADDRESS",
                        help="address to listen on (default: all interfaces, IPv6 and IPv4)")
    parser.add_argument("-d", "--directory", default=os.getcwd(),
                        help="directory to serve (default: the current directory)")
    parser.add_argument("-p", "--protocol", type=_protocol, default="HTTP/1.1",
                        metavar="VERSION",
                        help="HTTP version of responses: HTTP/1.1 (default, keep-alive) "
                        "or HTTP/1.0 (the default of python -m http.server)")
    parser.add_argument("--tls-cert", metavar="FILE",
                        help="serve HTTPS with this PEM certificate chain")
    parser.add_argument("--tls-key", metavar="FILE",
                        help="private key of --tls-cert (if not in the same file)")
    parser.add_argument("--header", action="append", type=_header, default=[],
                        metavar="NAME:VALUE",
                        help="add a header to every response, e.g. "
                        "'Access-Control-Allow-Origin: *' (repeatable)")
    parser.add_argument("--threads", type=_positive, metavar="N",
                        help="most handlers that may block at once (requests are served on "
                        "the event loop; a handler that blocks hands the loop to one of "
                        "these threads). Default: from the CPU count, at least 32")
    prefork.add_arguments(parser)
    parser.add_argument("--forwarded-allow-ips", type=_trusted, metavar="IPS",
                        help="comma-separated IPs/CIDRs of trusted reverse proxies ('*': "
                        "any); requests from them are logged with the client address their "
                        "forwarding header reports (default: none)")
    parser.add_argument("--forwarded-header", choices=(X_FORWARDED_FOR, FORWARDED),
                        default=X_FORWARDED_FOR, type=str.lower,
                        help="which header the trusted proxies write: x-forwarded-for "
                        "(default; nginx, HAProxy) or forwarded (RFC 7239)")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="serve symlinks that point outside the directory (default: 404)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not log requests (handler failures are still logged)")
    parser.add_argument("--version", action="version", version=f"minihttp {__version__}")
    return parser


# -- server construction ------------------------------------------------------------------------


class _Lifecycle:
    """Mix-in: track open connections so a stop can wake idle keep-alive readers.

    ``shutdown(SHUT_RD)`` on an idle connection makes its blocked ``recv`` return EOF, so the
    handler ends; a response being written is not affected and finishes normally.
    """

    _cli_conns: set[socket.socket]
    _cli_conns_lock: threading.Lock

    def _track(self, sock: socket.socket, add: bool) -> None:
        if "_cli_conns" not in vars(self):
            self._cli_conns, self._cli_conns_lock = set(), threading.Lock()
        with self._cli_conns_lock:
            (self._cli_conns.add if add else self._cli_conns.discard)(sock)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()  # type: ignore[misc]
        self._track(sock, True)
        return sock, addr

    def close_request(self, request: Any) -> None:
        self._track(request, False)
        super().close_request(request)  # type: ignore[misc]

    def stop_reading(self) -> None:
        """Make every tracked connection's next read see EOF."""
        if "_cli_conns" not in vars(self):
            return
        with self._cli_conns_lock:
            conns = list(self._cli_conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RD)  # base method: not SSL's


class _TLS(_Lifecycle):
    """Mix-in: wrap each connection in TLS on its worker thread, never on the accept loop."""

    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)  # type: ignore[misc]
            return
        previous = request.gettimeout()
        request.settimeout(TLS_HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        self._track(tls, True)
        try:
            tls.settimeout(previous)
            super().finish_request(tls, client_address)  # type: ignore[misc]
        finally:
            self._track(tls, False)
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            log.debug("TLS error with %s: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


def _family(bind: str | None, port: int) -> tuple[int, str]:
    """Address family and host to bind: dual-stack ``::`` by default, like http.server."""
    if bind is None:
        return (socket.AF_INET6, "::") if socket.has_dualstack_ipv6() else (
            socket.AF_INET, "0.0.0.0")
    infos = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _canon, sockaddr = infos[0]
    return family, str(sockaddr[0])


class CertificateError(Exception):
    """The TLS certificate or key cannot be used (message names the file and the reason)."""


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server-side TLS context for ``--tls-cert`` / ``--tls-key`` (None: plain HTTP)."""
    if not cert:
        if key:
            raise ValueError("--tls-key needs --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path in (cert, key):
        if path and not os.access(path, os.R_OK):
            raise CertificateError(f"cannot read {path}")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise CertificateError(f"cannot load certificate {cert}"
                               f"{f' / key {key}' if key else ''}: {reason}") from None
    return context


def make_server(args: argparse.Namespace) -> HTTPServer:
    """Build (bind and listen) the server described by parsed arguments.

    Raises OSError (port in use, bad address), :class:`CertificateError` or ValueError (bad
    directory, --tls-key alone).
    """
    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        raise ValueError(f"not a directory: {args.directory}")
    context = _tls_context(args.tls_cert, args.tls_key)
    family, host = _family(args.bind, args.port)

    handler_attrs: dict[str, Any] = {
        "protocol_version": args.protocol,
        "extra_headers": tuple(args.header),
        "follow_symlinks": args.follow_symlinks,
    }
    handler_class = type("CLIRequestHandler", (_CLIHandler,), handler_attrs)
    server_attrs: dict[str, Any] = {"address_family": family, "ssl_context": context}
    if getattr(args, "forwarded_allow_ips", None):
        server_attrs["forwarded_allow_ips"] = TrustedProxies(
            args.forwarded_allow_ips, getattr(args, "forwarded_header", X_FORWARDED_FOR))
    if args.threads:
        server_attrs["max_workers"] = args.threads
        server_attrs["max_queue"] = args.threads
    server_class: type[Any] = type("CLIServer", (_TLS, server_base()), server_attrs)

    if family == socket.AF_INET6:
        def server_bind(self: Any) -> None:
            # Accept IPv4 too on "::" (IPv4-mapped addresses), as http.server does.
            with contextlib.suppress(AttributeError, OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super(server_class, self).server_bind()

        server_class.server_bind = server_bind
    return server_class(  # type: ignore[no-any-return]
        (host, args.port), partial(handler_class, directory=directory))


class _CLIHandler(SimpleHTTPRequestHandler):
    """The static handler plus the CLI's ``--header`` fields on every response."""

    extra_headers: tuple[tuple[str, str], ...] = ()

    def end_headers(self) -> None:
        for name, value in self.extra_headers:
            self.send_header(name, value)
        super().end_headers()


def _url(server: HTTPServer, tls: bool) -> str:
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"{'https' if tls else 'http'}://{host}:{port}/"


def _configure_logging(quiet: bool, with_pid: bool = False) -> None:
    # minihttp's lines to stderr through a batching LineHandler (issue 15 item 13: about
    # 1 us per access line instead of ~13 us through a StreamHandler); see minihttp.logs.
    logs.configure(quiet=quiet, with_pid=with_pid)


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; ``(old, new)`` if it changed."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or hard == resource.RLIM_INFINITY:
        return None  # (macOS reports "infinity" but refuses it: leave the limit alone)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.debug("cannot raise the open-file limit: %s", exc)
        return None
    log.info("raised open-file limit from %d to %d", soft, hard)
    return soft, hard


def serve(args: argparse.Namespace) -> int:
    """Run the static file server described by ``args`` until SIGINT/SIGTERM."""
    workers = getattr(args, "workers", None)
    _configure_logging(args.quiet, with_pid=bool(workers))
    raise_open_file_limit()
    try:
        server = make_server(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{args.bind or '[::]'}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            print(f"error: cannot listen on {where}: address already in use", file=sys.stderr)
        elif exc.filename:
            print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        else:
            print(f"error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    if not workers:
        return run_until_stopped(server, args.quiet, partial(_announce, server, args))
    try:
        return prefork.serve_workers(server, workers,
                                     partial(run_until_stopped, server, args.quiet),
                                     graceful_timeout=args.graceful_timeout,
                                     on_ready=partial(_announce, server, args))
    finally:
        server.server_close()


def _announce(server: HTTPServer, args: argparse.Namespace) -> None:
    tls = bool(server.ssl_context)  # type: ignore[attr-defined]
    print(f"Serving {'HTTPS' if tls else 'HTTP'} on {_url(server, tls)} "
          f"(directory {os.path.abspath(args.directory)}) ...", flush=True)


def run_until_stopped(server: HTTPServer, quiet: bool = False, on_ready: Any = None) -> int:
    """Serve until SIGINT/SIGTERM, then finish in-flight requests; the exit status.

    ``on_ready()`` runs once the signal handlers are in place (a stop is never lost). Used
    by every command line (static server, proxy), in one process or in each pre-forked
    worker (the supervisor stops workers with SIGTERM).
    """
    stopped_at: list[float] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopped_at:
            # A second signal forces the exit, unless it is the same stop delivered twice
            # (a supervisor signalling both the process and its group, like timeout(1)).
            if time.monotonic() - stopped_at[0] > FORCE_AFTER:
                os._exit(128 + signum)
            return
        stopped_at.append(time.monotonic())
        # shutdown() waits for serve_forever, which runs on this very thread: never call it
        # here directly (it would deadlock); a helper thread does.
        threading.Thread(target=server.shutdown, name="minihttp-stop", daemon=True).start()

    previous = _install(on_signal)
    try:
        if on_ready is not None:
            on_ready()
        server.serve_forever()
        if not quiet:
            print("Stopping: finishing in-flight requests ...", file=sys.stderr, flush=True)
    finally:
        try:
            stop_reading = getattr(server, "stop_reading", None)
            if stop_reading is not None:
                stop_reading()
            server.server_close()  # joins the workers: in-flight responses complete
        finally:
            _install(previous)
    return 0


def _install(handler: Any) -> list[Any]:
    """Install ``handler`` (or a list of previous handlers) for SIGINT and SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return []  # signal handlers can only be set from the main thread (e.g. in tests)
    signums = [signal.SIGINT, signal.SIGTERM]
    handlers = handler if isinstance(handler, list) else [handler] * len(signums)
    if not handlers:
        return []
    return [signal.signal(s, signal.SIG_DFL if h is None else h)
            for s, h in zip(signums, handlers, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m minihttp`` and the ``minihttp`` script; the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args_list[0]])
        try:
            return int(module.main(args_list[1:]))
        except SystemExit as exc:  # the subcommand's argparse: --help or a usage error
            return exc.code if isinstance(exc.code, int) else 2
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return serve(args)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
