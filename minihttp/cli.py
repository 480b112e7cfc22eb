"""``python -m minihttp``: serve a directory, like ``python -m http.server`` but better.

Same habits (``[port]``, ``-b``, ``-d``, ``-p``), plus HTTPS, extra response headers, a bounded
worker pool, dual-stack IPv4/IPv6 by default, and a clean stop on SIGINT/SIGTERM. A first
argument naming a subcommand (``proxy``, ``wsgi``, ``run``) hands the rest of the command
line to that mode, so ``python -m minihttp 8080`` and ``python -m minihttp proxy 8080`` both
work. The production options (:func:`add_server_arguments`) and the way a server is bound
(:func:`build_server`) and run (:func:`serve`) are shared by the file server and the
application commands (:mod:`minihttp.wsgi.command`).

Rules of this module:

* User errors (bad argument, port in use, missing directory, unreadable certificate) are one
  line on stderr and exit status 2 (usage) or 1 (environment), never a traceback.
* Stopping never deadlocks: the signal handler only sets a flag and starts a thread that calls
  ``shutdown()``; the main thread then closes the server, which lets in-flight responses finish
  for up to ``--graceful-timeout`` seconds (the server's ``shutdown_grace``, in one process and
  in each worker), then cuts them. A second SIGINT/SIGTERM (not the same stop delivered
  twice: :func:`minihttp.prefork.force_window`) cuts them at once, writes the access lines
  it can within :data:`FORCE_LOG_WAIT` and exits with 128 + the signal number (130).
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
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import Any

from . import __version__, auth_cli, logs, prefork, tlsfiles
from ._linewriter import flush_all
from .accesslog import ACCESS_FIELDS, access_format, with_access_log
from .config import DEFAULT_LIMITS
from .forwarded import FORWARDED, X_FORWARDED_FOR, TrustedProxies
from .http11 import validate_field
from .listen import Listener, descriptor, systemd_listen_fd
from .prefork import _positive
from .server import HTTPServer
from .static import SimpleHTTPRequestHandler, cors, site, upload
from .static import compress as _compress
from .tlsfiles import CertificateError

__all__ = [
    "SUBCOMMANDS",
    "CertificateError",
    "add_server_arguments",
    "build_parser",
    "build_server",
    "graceful_stop",
    "main",
    "make_server",
    "overflow_for",
    "parse_port",
    "raise_open_file_limit",
    "run_until_stopped",
    "serve",
    "server_base",
    "server_url",
]

#: ``python -m minihttp NAME ...`` runs ``<module>.main(rest_of_argv) -> int`` (or the
#: function named after a ``:``).
SUBCOMMANDS: dict[str, str] = {
    "proxy": "minihttp.proxy",
    "wsgi": "minihttp.wsgi.command:main_wsgi",
    "run": "minihttp.wsgi.command:main_run",
    "hash-password": "minihttp.auth_cli:main_hash_password",
}

log = logging.getLogger("minihttp.cli")

#: Least seconds between a first stop and a second signal that forces the exit: sooner, it
#: is the same stop delivered twice. On top of it, :func:`minihttp.prefork.force_window`:
#: 0.1 s for SIGINT (a person pressing Ctrl-C again is slower), 1 s for SIGTERM (timeout(1)
#: signals the process, then its group; a busy machine may run the two handlers far apart).
FORCE_AFTER = 0.0
#: FORCE_AFTER in a pre-forked worker: Ctrl-C reaches it from the terminal and then as the
#: supervisor's SIGTERM, which may lag on a busy machine; the supervisor forces the stop.
WORKER_FORCE_AFTER = 1.0
#: At a forced exit, seconds the cut requests get to write their access lines.
FORCE_LOG_WAIT = 0.2
#: At a forced exit, seconds after which the process ends whatever the clean-up is doing
#: (a lock it waits for, a cut that does not return): the second Ctrl-C always wins.
FORCE_EXIT_LIMIT = 2.0
#: ``--graceful-timeout`` in one process when not given (the event-loop server's default).
SINGLE_PROCESS_GRACE = 5.0
#: A graceful stop first stops accepting, then waits this long before ``shutdown()``: a
#: connection accepted just before the stop whose request was not read yet would otherwise
#: be closed unanswered by the drain (seen with SIGHUP and --max-requests replacing workers:
#: about one fresh connection in a dozen replacements). Within this time its request is
#: served; a client slower than that is closed as any slow client at a stop.
ACCEPT_GRACE = 0.2
#: Seconds a client gets to finish its TLS handshake (the worker it holds is freed after).
TLS_HANDSHAKE_TIMEOUT = 10.0


def server_base() -> type[HTTPServer]:
    """The server class the CLI uses: the event-loop server."""
    from .eventloop import PooledHTTPServer

    return PooledHTTPServer


# -- argument parsing ---------------------------------------------------------------------------


def parse_port(text: str) -> int:
    """argparse type of a port number (0-65535)."""
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


_THREADS_HELP = ("most handlers that may block at once (requests are served on the event "
                 "loop; a handler that blocks hands the loop to one of these threads; "
                 "when all N block, up to N/4 more start, so a short request does not wait "
                 "behind N long ones). Default: from the CPU count, at least 32")


def overflow_for(threads: int) -> int:
    """Extra threads allowed while all ``--threads`` block: a quarter more, at least 4.

    Measured (bench_wsgi.py --blocking: 64 clients of a 50 ms endpoint on --threads 64, one
    client of a fast one): with no reserve the fast client waits for one of the 64 to end,
    p99 37 ms; with it, see the README's WSGI section.
    """
    return max(4, threads // 4)


def add_server_arguments(parser: argparse.ArgumentParser, *,
                         default_bind: str = "all interfaces, IPv6 and IPv4",
                         threads_help: str = _THREADS_HELP, transport: bool = True) -> None:
    """The production options every server command line shares (static files, ``wsgi``,
    ``run``, ``proxy``): one family, declared once. ``transport=False`` leaves out what
    only servers built by :func:`build_server` offer (TLS, ``--threads N``, trusted
    proxies, ``--unix`` / ``--fd``): the proxy's."""
    parser.add_argument("-b", "--bind", metavar="ADDRESS",
                        help=f"address to listen on (default: {default_bind})")
    if transport:
        _add_transport_arguments(parser, threads_help)
    else:
        prefork.add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not log requests (handler failures are still logged)")
    parser.add_argument("--access-log", metavar="FILE",
                        help="write the access log to FILE ('-': standard output) instead of "
                        "standard error")
    parser.add_argument("--access-log-format", metavar="FORMAT", default="common",
                        type=access_format,
                        help="'common' (default, Common Log Format), 'combined' (+ referer "
                        "and user agent), 'json' (one JSON object a line) or a template of "
                        f"{{fields}}: {', '.join(ACCESS_FIELDS)}")
    parser.add_argument("--version", action="version", version=f"minihttp {__version__}")


def _add_transport_arguments(parser: argparse.ArgumentParser, threads_help: str) -> None:
    """TLS, threads, pre-forking, trusted proxies, inherited or Unix sockets."""
    parser.add_argument("--tls-cert", metavar="FILE",
                        help="serve HTTPS with this PEM certificate chain")
    parser.add_argument("--tls-key", metavar="FILE",
                        help="private key of --tls-cert (if not in the same file)")
    parser.add_argument("--threads", type=_positive, metavar="N", help=threads_help)
    prefork.add_arguments(parser)
    parser.add_argument("--forwarded-allow-ips", type=_trusted, metavar="IPS",
                        help="comma-separated IPs/CIDRs of trusted reverse proxies ('*': "
                        "any); requests from them are logged with the client address their "
                        "forwarding header reports (default: none)")
    parser.add_argument("--forwarded-header", choices=(X_FORWARDED_FOR, FORWARDED),
                        default=X_FORWARDED_FOR, type=str.lower,
                        help="which header the trusted proxies write: x-forwarded-for "
                        "(default; nginx, HAProxy) or forwarded (RFC 7239)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--unix", metavar="PATH",
                       help="listen on a Unix socket at PATH instead of a port (for nginx in "
                       "front: proxy_pass http://unix:PATH); its peers count as 127.0.0.1")
    where.add_argument("--fd", type=descriptor, metavar="N",
                       help="serve the listening socket inherited as descriptor N (systemd "
                       "socket activation, LISTEN_FDS, is used without this option)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the static file server."""
    parser = argparse.ArgumentParser(
        prog="python -m minihttp",
        description="Serve a directory over HTTP/1.1 (GET and HEAD, with ranges, "
        "conditional requests and directory listings).",
        epilog="Other modes: 'python -m minihttp proxy --help' runs a forward proxy, "
        "'python -m minihttp wsgi --help' a WSGI application (Flask, Django), "
        "'python -m minihttp run --help' a handler class, "
        "'python -m minihttp hash-password USER' a line for --auth-file. "
        "Stop with Ctrl-C or SIGTERM; in-flight responses are finished first.",
    )
    parser.add_argument("port", nargs="?", type=parse_port, default=8000,
                        help="port to listen on (default 8000; 0 picks a free port)")
    parser.add_argument("-d", "--directory", default=os.getcwd(),
                        help="directory to serve (default: the current directory)")
    parser.add_argument("-p", "--protocol", type=_protocol, default="HTTP/1.1",
                        metavar="VERSION",
                        help="HTTP version of responses: HTTP/1.1 (default, keep-alive) "
                        "or HTTP/1.0 (the default of python -m http.server)")
    parser.add_argument("--header", action="append", type=_header, default=[],
                        metavar="NAME:VALUE",
                        help="add a header to every response, e.g. "
                        "'X-Robots-Tag: noindex' (repeatable)")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="serve symlinks that point outside the directory (default: 404)")
    upload.add_arguments(parser)
    _compress.add_arguments(parser)
    auth_cli.add_arguments(parser)
    add_server_arguments(parser)
    cors.add_arguments(parser)
    site.add_arguments(parser)
    return parser


# -- server construction ------------------------------------------------------------------------


class _Lifecycle:
    """Mix-in: track open connections so a stop can wake idle keep-alive readers, and stop
    accepting before a stop (see :func:`graceful_stop`).

    ``shutdown(SHUT_RD)`` on an idle connection makes its blocked ``recv`` return EOF, so the
    handler ends; a response being written is not affected and finishes normally.
    """

    _cli_conns: set[socket.socket]
    _cli_conns_lock: threading.Lock
    _refuse_new = False

    def accepting(self) -> bool:
        return not self._refuse_new and bool(super().accepting())  # type: ignore[misc]

    def stop_accepting(self) -> None:
        """Leave new connections in the backlog (another worker, or nobody, takes them)."""
        self._refuse_new = True
        self.wake_loop()  # type: ignore[attr-defined]

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


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server-side TLS context for ``--tls-cert`` / ``--tls-key`` (None: plain HTTP)."""
    if not cert:
        if key:
            raise ValueError("--tls-key needs --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tlsfiles.load_cert_chain(context, cert, key)  # CertificateError: one line, what to pass
    return context


def make_server(args: argparse.Namespace) -> HTTPServer:
    """Build (bind and listen) the static file server described by parsed arguments.

    Raises OSError (port in use, bad address), :class:`CertificateError` or ValueError (bad
    directory, --tls-key alone).
    """
    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        raise ValueError(f"not a directory: {args.directory}")
    handler_attrs: dict[str, Any] = {
        "protocol_version": args.protocol,
        "extra_headers": tuple(args.header),
        "follow_symlinks": args.follow_symlinks,
        **_compress.handler_attrs(args),
    }
    handler_attrs.update(site.handler_attributes(args))
    handler_attrs.update(upload.handler_attrs(args))
    handler_class: type[_CLIHandler] = type(
        "CLIRequestHandler", upload.handler_bases(args, _CLIHandler), handler_attrs)
    handler_class = cors.apply(handler_class, args)
    handler_class = auth_cli.with_auth(handler_class, args)  # last: it wraps the final class
    return build_server(args, partial(handler_class, directory=directory),
                        upload.server_limits(args, DEFAULT_LIMITS))


def build_server(args: argparse.Namespace, handler: Any,
                 server_attrs: dict[str, Any] | None = None) -> HTTPServer:
    """Bind and listen a server for ``handler`` as the shared options say (address, TLS,
    trusted proxies, threads); ``server_attrs`` are set on its class.

    Raises OSError, :class:`CertificateError` or ValueError.
    """
    context = _tls_context(args.tls_cert, args.tls_key)
    attrs: dict[str, Any] = {"ssl_context": context}
    bases: tuple[type, ...] = (_TLS, server_base())
    unix, fd = getattr(args, "unix", None), getattr(args, "fd", None)
    if fd is None and not unix:
        fd = systemd_listen_fd()
    if unix or fd is not None:
        attrs.update(address_family=socket.AF_UNIX if unix else socket.AF_INET,
                     inherited_fd=-1 if fd is None else fd)
        bases = (_TLS, Listener, server_base())
        family, address = attrs["address_family"], unix or ""
    else:
        family, host = _family(args.bind, args.port)
        attrs["address_family"], address = family, (host, args.port)
    if getattr(args, "forwarded_allow_ips", None):
        attrs["forwarded_allow_ips"] = TrustedProxies(
            args.forwarded_allow_ips, getattr(args, "forwarded_header", X_FORWARDED_FOR))
    if args.threads:
        attrs["max_workers"] = args.threads
        attrs["max_queue"] = args.threads
        attrs["max_overflow"] = overflow_for(args.threads)
    attrs.update(server_attrs or {})
    server_class: type[Any] = type("CLIServer", bases, attrs)
    handler = with_access_log(handler, getattr(args, "access_log_format", "common"))

    if family == socket.AF_INET6:
        def server_bind(self: Any) -> None:
            # Accept IPv4 too on "::" (IPv4-mapped addresses), as http.server does.
            with contextlib.suppress(AttributeError, OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super(server_class, self).server_bind()

        server_class.server_bind = server_bind
    return server_class(address, handler)  # type: ignore[no-any-return]


class _CLIHandler(SimpleHTTPRequestHandler):
    """The static handler plus the CLI's ``--header`` fields on every response."""

    extra_headers: tuple[tuple[str, str], ...] = ()
    #: Its end_headers adds fixed fields only: a repeated head may skip parsing
    #: (minihttp.static.hit.repeatable).
    _repeat_safe = True

    def end_headers(self) -> None:
        for name, value in self.extra_headers:
            self.send_header(name, value)
        super().end_headers()


def server_url(server: HTTPServer) -> str:
    """Where ``server`` listens, as the announce line says it: ``http://host:port/`` or
    ``unix:PATH``."""
    if isinstance(server.server_address, (str, bytes)):
        path = server.server_address
        return f"unix:{path.decode() if isinstance(path, bytes) else path}"
    tls = bool(getattr(server, "ssl_context", None))
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"{'https' if tls else 'http'}://{host}:{port}/"


def _configure_access_log(path: str | None) -> None:
    """``--access-log FILE``: the access log goes there (``-``: standard output) alone,
    through a batching :class:`~minihttp.logs.LineHandler` (see logs.access_to)."""
    if path:
        logs.access_to(path)


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


def serve(args: argparse.Namespace,
          make: Callable[[argparse.Namespace], HTTPServer] | None = None,
          announce: Callable[[HTTPServer, argparse.Namespace], None] | None = None) -> int:
    """Run the server ``make(args)`` builds (default: the static file server) until
    SIGINT/SIGTERM, in one process or ``--workers`` pre-forked ones; the exit status."""
    make = make or make_server
    announce = announce or _announce
    workers = getattr(args, "workers", None)
    _configure_logging(args.quiet, with_pid=bool(workers))
    try:
        _configure_access_log(getattr(args, "access_log", None))
    except OSError as exc:
        print(f"error: cannot open the access log: {exc}", file=sys.stderr)
        return 1
    raise_open_file_limit()
    try:
        server = make(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = (getattr(args, "unix", None)
                 or (f"descriptor {args.fd}" if getattr(args, "fd", None) is not None else "")
                 or f"{args.bind or '[::]'}:{args.port}")
        if exc.errno == errno.EADDRINUSE:
            print(f"error: cannot listen on {where}: address already in use", file=sys.stderr)
        elif exc.filename:
            print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        else:
            print(f"error: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    ready = partial(announce, server, args)
    grace = getattr(args, "graceful_timeout", None)
    if not workers:
        return run_until_stopped(server, args.quiet, ready,
                                 SINGLE_PROCESS_GRACE if grace is None else grace)
    try:
        return prefork.serve_workers(server, workers,
                                     partial(run_until_stopped, server, args.quiet,
                                             graceful_timeout=grace,
                                             force_after=WORKER_FORCE_AFTER),
                                     graceful_timeout=grace, on_ready=ready)
    finally:
        server.server_close()


def _announce(server: HTTPServer, args: argparse.Namespace) -> None:
    tls = bool(server.ssl_context)  # type: ignore[attr-defined]
    print(f"Serving {'HTTPS' if tls else 'HTTP'} on {server_url(server)} "
          f"(directory {os.path.abspath(args.directory)}) ...", flush=True)


def run_until_stopped(server: HTTPServer, quiet: bool = False, on_ready: Any = None,
                      graceful_timeout: float | None = None,
                      force_after: float = FORCE_AFTER) -> int:
    """Serve until SIGINT/SIGTERM, then finish in-flight requests; the exit status.

    ``on_ready()`` runs once the signal handlers are in place (a stop is never lost). Used
    by every command line (static server, proxy), in one process or in each pre-forked
    worker (the supervisor stops workers with SIGTERM). ``graceful_timeout`` (None: the
    server's own) is how long in-flight requests may take after the stop before their
    connections are cut; a second signal cuts them at once and exits (see the rules).
    """
    if graceful_timeout is not None and hasattr(server, "shutdown_grace"):
        server.shutdown_grace = graceful_timeout
    stopped_at: list[float] = []
    forced: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopped_at:
            # A second signal forces the exit, unless it is the same stop delivered twice
            # (a supervisor signalling both the process and its group, like timeout(1)).
            if time.monotonic() - stopped_at[0] > prefork.force_window(signum, force_after):
                forced.append(128 + signum)  # the status, if the main thread ends first
                # On a thread: the request to cut may be running on this very thread (the
                # loop serves inline), interrupted by this handler; it must go on to fail
                # and log what it sent.
                threading.Thread(target=_force_exit, args=(server, signum),
                                 name="minihttp-exit", daemon=True).start()
            return
        stopped_at.append(time.monotonic())
        # shutdown() waits for serve_forever, which runs on this very thread: never call it
        # here directly (it would deadlock); a helper thread does.
        threading.Thread(target=graceful_stop, args=(server,), name="minihttp-stop",
                         daemon=True).start()

    previous = _install(on_signal)
    try:
        if on_ready is not None:
            on_ready()
        server.serve_forever()
        if not quiet:
            _say_whole("Stopping: finishing in-flight requests ...")
    finally:
        try:
            stop_reading = getattr(server, "stop_reading", None)
            if stop_reading is not None:
                stop_reading()
            server.server_close()  # joins the workers: in-flight responses complete
        finally:
            _install(previous)
    return forced[0] if forced else 0


def _force_exit(server: HTTPServer, signum: int) -> None:
    """Exit now (a second Ctrl-C): cut the requests in flight so that they fail and log what
    they sent, give them :data:`FORCE_LOG_WAIT` to do so, write the batched log lines, go.
    Runs on a thread of its own (see ``run_until_stopped``)."""
    last_word = threading.Timer(FORCE_EXIT_LIMIT, os._exit, args=(128 + signum,))
    last_word.daemon = True
    last_word.start()
    cut = getattr(server, "cut_stragglers", None)
    try:
        if cut is not None:
            cut()
        time.sleep(FORCE_LOG_WAIT)
        logging.shutdown()
        flush_all(FORCE_LOG_WAIT)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    finally:
        os._exit(128 + signum)


def _say_whole(text: str) -> None:
    """One line on stderr in ONE write(): pre-forked workers and the access-log writer share
    that descriptor, and a line written in two pieces (text, then its newline) let another
    process's access line land in between (seen in test_prefork's interleaving test)."""
    data = (text + "\n").encode("utf-8", "replace")
    try:
        sys.stderr.flush()
        os.write(sys.stderr.fileno(), data)
    except (AttributeError, OSError, ValueError):  # no real descriptor (captured stderr)
        print(text, file=sys.stderr, flush=True)


def graceful_stop(server: HTTPServer, grace: float = ACCEPT_GRACE) -> None:
    """Stop accepting, let connections accepted just before send their request
    (:data:`ACCEPT_GRACE`), then ``shutdown()`` (in-flight requests finish). Blocks: call it
    on a thread of its own, never on the serving thread."""
    stop_accepting = getattr(server, "stop_accepting", None)
    if stop_accepting is not None:
        stop_accepting()
        time.sleep(grace)
    server.shutdown()


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
        module_name, _, function = SUBCOMMANDS[args_list[0]].partition(":")
        entry = getattr(importlib.import_module(module_name), function or "main")
        try:
            return int(entry(args_list[1:]))
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
