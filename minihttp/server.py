"""HTTPServer, ThreadingHTTPServer and BaseHTTPRequestHandler: ``http.server``'s API, done right.

Code written for the standard library's ``http.server`` runs after changing its imports:
subclass :class:`BaseHTTPRequestHandler`, write ``do_GET``, call ``send_response`` /
``send_header`` / ``end_headers``, write the body to ``self.wfile``. Underneath:

* Heads are parsed by :mod:`minihttp.http11` (strict RFC 9112); a bad head gets the status its
  error carries and the connection closes when the error says so.
* During a request ``self.rfile`` is exactly the request body (Content-Length or decoded
  chunked), ``b''`` after it. Whatever the handler leaves unread is drained (bounded by
  ``Limits.max_discard`` / ``discard_timeout``) or the connection is closed: a body can never
  be parsed as the next request.
* ``self.wfile`` enforces the response framing (RFC 9112 section 6.3): fewer bytes than the
  declared Content-Length close the connection (logged on ``minihttp.error``), more raise
  :class:`~minihttp._writer.ResponseTooLong`; with no Content-Length an HTTP/1.1 keep-alive
  response is sent chunked, otherwise close-delimited. HEAD, 1xx, 204 and 304 responses carry
  no body: body bytes written for them are *dropped* (so GET/HEAD can share code), and a
  Content-Length on HEAD is passed through as metadata (RFC 9110 section 9.3.2).
* The response head and body are buffered and sent with one ``sendall`` at the end of the
  request (or past 64 KiB, or on ``self.wfile.flush()`` for streaming).
* ``Expect: 100-continue`` is answered when the handler first reads the body; a handler that
  never reads it gets no ``100`` and the connection is closed rather than drained. A handler
  class that overrides ``handle_expect_100`` gets the standard library's eager call.
* Logging: ``minihttp.access`` (INFO, Common Log Format, written when the request ends so
  the size is known) and ``minihttp.error``; where a line goes is decided by
  :mod:`minihttp.logs` from the logging configuration: nothing configured, ``sys.stderr``
  as ``http.server``; the command lines' :class:`~minihttp.logs.LineHandler`, only the
  line's fields handed over (formatted on its writer's thread); otherwise a record.

Speed (a keep-alive request is one ``recv`` and one ``sendall``): blocking sockets with kernel
timeouts (SO_RCVTIMEO/SO_SNDTIMEO, no ``poll`` per call), prebuilt status / Server / Date /
repeated header lines (status, Server and Date lines are one ``bytes`` cached per second), the
common keep-alive Content-Length response framed without the general ``_framing`` walk, and
no per-request logging work when the access logger is disabled or ``log_message`` is
overridden by a function that provably does nothing (``pass``). Every head is parsed in full:
nothing is memoized between requests, so a benchmark's identical requests cost what real
traffic costs. No ``sys.setswitchinterval`` change: each request blocks in ``recv`` and
``sendall``, which hand the GIL over long before the 5 ms interval expires (measured: 0.5,
5 and 50 ms gave the same throughput within noise).

Socketless use (unit tests): a handler whose ``rfile`` / ``wfile`` are plain file objects
(``BytesIO``) behaves like the standard library's byte for byte, apart from the stricter
parser: heads are read with ``readline(limit)`` and nothing is added to the response.

For a pooled server (a connection parked in a selector between requests):
``BaseHTTPRequestHandler.attach(request, client_address, server)`` builds a handler and runs
only ``setup()``; ``handler.reader`` is the connection's :class:`~minihttp._reader.SocketReader`
(``feed(data)`` appends bytes received elsewhere, ``has_request()`` says a head is complete or
EOF/an error is pending); ``handle_one_request()`` may be called once per request; afterwards
``close_connection`` says whether to keep the connection; ``finish()`` releases it.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import select
import socket
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from time import time as _time
from typing import TYPE_CHECKING, Any, ClassVar

from . import forwarded
from ._body import EMPTY_BODY, BodyReader, ChunkedBody, LengthBody
from ._reader import FileSource, SocketReader
from ._sockets import set_send_timeout
from ._writer import (
    CHUNKED,
    CLOSE,
    END_NO_RESPONSE,
    END_SHORT,
    LENGTH,
    NOBODY,
    PASSTHROUGH,
    ResponseNotSent,
    ResponseWriter,
)
from .config import DEFAULT_LIMITS, Limits
from .errors import HTTPError
from .http11 import body_allowed, reason_phrase, validate_field
from .http11._head import head_fields
from .logs import (
    TO_STDERR,
    VIA_LOGGING,
    Emit,
    access_log,
    access_record,
    access_route,
    control_escape,
    error_log,
    error_route,
    log_date,
)
from .socketserver import StreamRequestHandler, TCPServer, ThreadingMixIn

__all__ = [
    "DEFAULT_ERROR_CONTENT_TYPE",
    "DEFAULT_ERROR_MESSAGE",
    "BaseHTTPRequestHandler",
    "Deferred",
    "HTTPSServer",
    "HTTPServer",
    "SimpleHTTPRequestHandler",
    "ThreadingHTTPSServer",
    "ThreadingHTTPServer",
]

__version__ = "0.1"

DEFAULT_ERROR_MESSAGE = """\
<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: %(code)d</p>
        <p>Message: %(message)s.</p>
        <p>Error code explanation: %(code)s - %(explain)s.</p>
    </body>
</html>
"""

DEFAULT_ERROR_CONTENT_TYPE = "text/html;charset=utf-8"

_INFO = logging.INFO
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
#: What a server's ``forwarded_allow_ips`` may be (anything else, such as a test's
#: ``mock.Mock()`` server answering every attribute, means "not configured").
_ALLOW_TYPES = (str, list, tuple, set, frozenset, forwarded.TrustedProxies)


class HTTPServer(TCPServer):
    """A TCP server for HTTP; ``limits`` bounds what clients may send (see config.Limits)."""

    allow_reuse_address = True
    #: Sizes and timeouts enforced by the handlers of this server.
    limits: Limits = DEFAULT_LIMITS

    def server_bind(self) -> None:
        """Bind, then record ``server_name`` (FQDN) and ``server_port``."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(host)
        self.server_port = port


class ThreadingHTTPServer(ThreadingMixIn, HTTPServer):
    """An HTTP server with a (daemon) thread per connection."""

    daemon_threads = True


# -- per-second caches of the Date header (RFC 9110 section 6.6.1) --------------------------

_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS: list[str | None] = [None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                             "Sep", "Oct", "Nov", "Dec"]


def _http_date(timestamp: float) -> str:
    """IMF-fixdate, as ``email.utils.formatdate(usegmt=True)`` without importing email."""
    t = time.gmtime(timestamp)
    return (f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


_date_second = -1
_date_text = ""
_date_line = b""


def _now_date() -> tuple[str, bytes]:
    """The current HTTP date and its ``Date:`` field line, recomputed once per second."""
    global _date_second, _date_text, _date_line
    now = _time()
    second = int(now)
    if second != _date_second:
        text = _http_date(now)
        _date_text, _date_line = text, f"Date: {text}\r\n".encode("latin-1")
        _date_second = second
    return _date_text, _date_line


_server_lines: dict[tuple[str, str], bytes] = {}
#: (name, value) -> (field line, kind, Content-Length value or 0): a validated header line,
#: so a handler sending the same fields on every response pays one dict lookup (kinds: see
#: _KIND_*). Bounded by clearing.
_field_cache: dict[tuple[str, str], tuple[bytes, int, int]] = {}
_FIELD_CACHE_MAX = 1024
_KIND_OTHER, _KIND_CONNECTION, _KIND_LENGTH, _KIND_TE = range(4)
_KINDS = {"connection": _KIND_CONNECTION, "content-length": _KIND_LENGTH,
          "transfer-encoding": _KIND_TE}
_status_lines: dict[tuple[str, int], bytes] = {}
#: (code, protocol_version, server_version, sys_version) -> (status, status + Server + Date
#: lines, the second of the Date): one append per response while that second lasts.
_status_server_lines: dict[tuple[Any, str, str, str], tuple[int, bytes, float]] = {}
_allow_values: dict[type, str] = {}
#: Handler classes that keep the default Server / Date / send_header (prebuilt lines):
#: 0 (some default overridden), 1 (fast, access log provably off: see
#: _log_mode), 2 (fast, access log written).
_fast_classes: dict[type, int] = {}

#: Most names a handler class may reserve (its ``_instance_names`` and its bases', then
#: ``_late_names``): CPython 3.11 keeps at most 30 names per class compact, one of them
#: taken by the first instance itself (see :class:`BaseHTTPRequestHandler`).
INSTANCE_NAMES_MAX = 29
#: Handler classes whose first instance reserved their ``_instance_names``.
_reserved_classes: set[type] = set()


def _instance_names(cls: type) -> list[str]:
    """The ``_instance_names`` of ``cls`` and its bases, bases first, each once."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        names.update(dict.fromkeys(vars(klass).get("_instance_names", ())))
    return list(names)


def _reserved_names(cls: type) -> list[str]:
    """What :func:`_reserve_names` reserves: :func:`_instance_names`, then as many of
    the ``_late_names`` as fit in :data:`INSTANCE_NAMES_MAX` (not ``_log_code`` when the
    class's access log provably does nothing: ``log_request`` then never sets it)."""
    names = _instance_names(cls)
    quiet = _log_mode(cls) == 0
    late = [n for n in getattr(cls, "_late_names", ())
            if n not in names and not (quiet and n == "_log_code")]
    return names + late[: max(INSTANCE_NAMES_MAX - len(names), 0)]


def _reserve_names(handler: Any) -> None:
    """Reserve the class's ``_instance_names`` in its shared keys, on its first instance.

    On CPython 3.11 a class's instances share one table of attribute names (at most 30),
    filled in the order names are first set, and every new instance takes one place from
    what is left. Under concurrent connections many handlers exist before the first
    request sets ``command`` or ``headers``; those would find no room and every handler
    would get a real dict. Setting then deleting each name on the first instance puts them
    in the table while it is empty (deleting leaves the name in the table). A name the
    class defines as a data descriptor (a subclass's property) is skipped: setting it
    would call the descriptor. Elsewhere this costs a few set/del pairs once per class.
    """
    cls = type(handler)
    _reserved_classes.add(cls)
    for name in _reserved_names(cls):
        attr = getattr(cls, name, None)
        if attr is not None and hasattr(type(attr), "__set__"):
            continue
        try:
            object.__setattr__(handler, name, None)
            object.__delattr__(handler, name)
        except (AttributeError, TypeError):
            pass  # a __slots__ class, or a name that cannot be set: nothing to reserve


class BaseHTTPRequestHandler(StreamRequestHandler):
    """HTTP request handler base class: define ``do_<METHOD>`` methods in a subclass.

    The request is described by ``command``, ``path``, ``request_version``, ``requestline``,
    ``raw_requestline`` and ``headers``; ``rfile`` is the request body, ``wfile`` takes the
    response body after ``send_response`` / ``send_header`` / ``end_headers``. Set
    ``protocol_version = "HTTP/1.1"`` for keep-alive.

    Instance attributes (a per-request cost on CPython 3.11): an instance keeps its
    attributes in a compact values array only while every name it sets is among its
    class's shared keys, which hold at most 30 names and accept one fewer for every
    instance made before a name is first set (so under concurrent connections a name first
    set by a request usually finds no room). Past that the instance gets a real dict and
    every attribute read and method lookup on it runs slower: measured 2.7k of the 51.7k
    instructions of a hello request (benchmarks/icount_hello.py). Hence these rules:

    * State that is usually at its default is a class-level default (immutable values
      only: None, False, 0, a tuple), set on the instance only where it differs; nothing is
      set "to be safe" per connection (``_init_state`` sets two names).
    * Every name the common request path sets is listed in ``_instance_names`` (a
      subclass adds its own in its own ``_instance_names``). The first instance of each
      class reserves them, in that order, before anything else (:func:`_reserve_names`),
      so they always have room, whatever the number of connections opened first.
    * The names of a class's ``_instance_names`` (its own and its bases') stay at most
      :data:`INSTANCE_NAMES_MAX` (29); ``_late_names`` (the access log's, a request
      body's, a trusted proxy's) are reserved after them while room is left. This class
      lists 25 and 3 late ones, so a user subclass has one name of its own beyond them
      before its instances get a dict (four if it never logs, reads bodies or trusts a
      proxy). tests/test_server_attrs.py checks the rules on served handlers.
    * Code never reads ``self.__dict__`` / ``vars(self)`` on the request path (on 3.11
      that alone turns the values array into a dict for the instance's life).
    """

    #: The names the common request path sets on an instance, in the order they are
    #: reserved in the class's shared keys (see the class docstring). A subclass lists its
    #: own additions only; :func:`_reserve_names` joins those of the whole MRO.
    _instance_names: ClassVar[tuple[str, ...]] = (
        "request", "client_address", "server", "connection", "reader", "_writer",
        "_direct_writer", "_lim", "rfile", "wfile", "_headers_buffer", "close_connection",
        "_conn_rfile", "_head", "raw_requestline", "requestline", "command", "path",
        "request_version", "headers", "_body", "_status", "_resp_length",
        "_resp_te", "_conn_header",
    )
    #: Names of common but optional paths (the access log, a request body, a trusted
    #: proxy's client: :mod:`minihttp.forwarded`), in this order, reserved after every
    #: class's ``_instance_names`` while room is left.
    _late_names: ClassVar[tuple[str, ...]] = ("_log_code", "_expect_pending", "peer_address")

    sys_version = "Python/" + sys.version.split()[0]
    server_version = "BaseHTTP/" + __version__
    error_message_format = DEFAULT_ERROR_MESSAGE
    error_content_type = DEFAULT_ERROR_CONTENT_TYPE
    #: Only used to answer a request whose line could not be parsed. minihttp never speaks
    #: HTTP/0.9 (RFC 9112 section 2.3 leaves it out): a "HTTP/0.9" here answers as HTTP/1.0.
    default_request_version = "HTTP/0.9"
    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True
    weekdayname = _WEEKDAYS
    monthname = _MONTHS
    responses: ClassVar[dict[int, tuple[str, str]]] = {
        v: (v.phrase, v.description) for v in HTTPStatus.__members__.values()
    }

    # Set per request (declared for type checkers; absent until the request line is parsed).
    command: str | None
    path: str
    request_version: str
    requestline: str = ""
    #: The user a request authenticated as (:mod:`minihttp.auth` sets it): the access
    #: log's third field (Common Log Format's authuser), ``-`` while None.
    remote_user: str | None = None
    raw_requestline: bytes
    headers: Any
    close_connection: bool
    client_address: Any
    # A SocketReader / BodyReader and a ResponseWriter, or plain files (socketless tests).
    rfile: Any
    wfile: Any
    _headers_buffer: list[bytes]
    #: The writer ``end_headers`` hands a final head to directly: the connection's writer,
    #: or None when the class overrides ``flush_headers`` (its heads go through it) or there
    #: is no socket. Decided once per connection in ``setup``.
    _direct_writer: ResponseWriter | None = None
    # Class-level defaults (immutable: shared by every instance), set on an instance only
    # where they differ (see the class docstring). Code written for http.server may also
    # build a handler without ``__init__`` (a request parser that sets ``rfile`` and
    # ``raw_requestline`` and calls ``parse_request()``); it then finds these.
    server: Any = None
    _lim: Limits | None = None
    _writer: ResponseWriter | None = None
    reader: SocketReader | None = None
    _file_source: FileSource | None = None
    _head: bytes | None = None
    _body: BodyReader | None = None
    _conn_rfile: Any = None
    _status: int | None = None
    _resp_length: int | None = None
    _resp_te: str | None = None
    _conn_header = False
    #: The access line left for the request's end: (status, ``time.time()`` of
    #: ``send_response``, the line's time), or None.
    _log_code: tuple[Any, float] | None = None
    _error_keepalive = False
    _error_headers: list[tuple[str, str]] | None = None
    _expect_pending = False
    _linger = False
    _pending_mode: tuple[int, int] | None = None

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self._init_state()
        super().__init__(request, client_address, server)

    def _init_state(self) -> None:
        """The two names every connection needs at once; the rest are class defaults."""
        cls = type(self)
        if cls not in _reserved_classes:
            _reserve_names(self)
        self._headers_buffer = []
        self.close_connection = True

    @classmethod
    def attach(cls, request: Any, client_address: Any, server: Any) -> BaseHTTPRequestHandler:
        """A handler for a connection with only ``setup()`` run (for a pooled server).

        Call ``handle_one_request()`` once per request, look at ``close_connection`` after
        each, and ``finish()`` when done with the connection.
        """
        self = cls._blank()
        self._init_state()
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        return self

    @classmethod
    def _blank(cls) -> BaseHTTPRequestHandler:
        """The instance :meth:`attach` sets up, before anything is set on it: a subclass
        whose ``__init__`` sets state before ``super().__init__`` sets the same here
        (``__init__`` does not run on a pooled server)."""
        return cls.__new__(cls)

    # -- connection set-up and tear-down -------------------------------------------------

    def _limits(self) -> Limits:
        limits = self._lim
        if limits is None:
            limits = getattr(self.server, "limits", None)
            if not isinstance(limits, Limits):
                limits = DEFAULT_LIMITS
            self._lim = limits
        return limits

    def setup(self) -> None:
        """Wrap a real socket in minihttp's reader and writer; else the stdlib's files."""
        sock = self.request
        if not isinstance(sock, socket.socket):
            super().setup()  # socketless tests: request.makefile() gives the files
            return
        self.connection = sock
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        if self.disable_nagle_algorithm and sock.family in _TCP_FAMILIES:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            except OSError:
                pass  # the peer may already be gone
        limits = self._limits()
        # With Python timeouts (TLS, or a handler ``timeout``) sends use the socket's timeout.
        set_send_timeout(sock, limits.send_timeout)
        self.reader = SocketReader(sock, limits)
        self._writer = writer = ResponseWriter(sock)
        if type(self).flush_headers is _base_flush_headers:
            # measured: this check per response cost ~0.4k of the ~51k instructions of a
            # hello request (callgrind, see _end_request); per connection it is free.
            self._direct_writer = writer
        self.rfile = self.reader
        self.wfile = self._writer

    def finish(self) -> None:
        """Release the connection's files (the server closes the socket)."""
        if self._writer is None:
            super().finish()
            return
        try:
            self._writer.close()
            if self._linger:
                self._lingering_close()
        finally:
            if self.reader is not None:
                self.reader.close()

    def _lingering_close(self) -> None:
        """Read and drop what the client still sends before the socket is closed.

        Closing a socket with unread input makes the kernel send RST, which can destroy the
        response (a 413, say) before the client reads it. So: stop sending, then drain for a
        bounded time and size (RFC 9112 section 9.6 "tear-down").
        """
        sock = self.connection
        limits = self._limits()
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + min(limits.discard_timeout, 2.0)
            budget = 16 * limits.max_discard
            while budget > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    break
                budget -= len(data)
        except OSError:
            pass  # the client is gone: nothing to protect

    # -- the request loop ----------------------------------------------------------------

    def handle(self) -> None:
        """Handle requests until one of them says to close the connection."""
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def _source(self) -> SocketReader | FileSource:
        """Where the next head comes from: our socket reader, or the file in ``self.rfile``."""
        rfile = self.rfile
        reader = self.reader
        if reader is not None and rfile is reader:
            return reader
        src = self._file_source
        if src is None or src.raw is not rfile:
            src = self._file_source = FileSource(rfile, self._limits())
        return src

    def handle_one_request(self) -> Deferred | None:
        """Read one request head, dispatch to ``do_<command>``, finish the response.

        Returns None when the response is complete, or the :class:`Deferred` the method
        asked for (:meth:`defer_until_readable`): the server then waits for it and calls
        :meth:`resume_request`."""
        self.close_connection = True
        rfile = self.rfile
        source = rfile if rfile is self.reader and rfile is not None else self._source()
        self._conn_rfile = rfile
        try:
            head = source.read_head()
        except HTTPError as err:
            self._reject_head(err)
            return None
        except OSError as err:
            error_log.debug("connection error reading a request head: %r", err)
            return None
        if head is None:
            return None  # EOF or idle keep-alive timeout: close silently
        self._head = head
        try:
            if self._repeat is not None and self._answer_repeat(head):
                pass  # the same bytes as a request answered before: see _answer_repeat
            elif self.parse_request():
                command = self.command
                method = getattr(self, _DO_NAMES.get(command)  # type: ignore[arg-type]
                                 or "do_" + command, None)  # type: ignore[operator]
                if method is None:
                    if command == "OPTIONS":
                        self.send_options()
                    else:
                        self._not_implemented()
                else:
                    try:
                        method()
                    except Exception as err:
                        self._deferred = None
                        self._method_failed(err)
        except Exception:
            self._request_failed()
            raise
        finally:
            deferred = self._deferred
            if deferred is None:  # else the response is finished by resume_request
                self._end_request()
        return deferred

    #: Set per connection by a subclass that can answer a repeated head without parsing it
    #: (:mod:`minihttp.static.hit`); while it is not None, ``handle_one_request`` first asks
    #: ``_answer_repeat(head)``, which either answers the request whole (setting the request
    #: fields as ``parse_request`` would) and returns True, or returns False.
    _repeat: Any = None

    def _answer_repeat(self, head: bytes) -> bool:
        """Answer ``head`` without parsing it if it repeats a known request (here: never)."""
        return False

    # -- deferred responses: the server waits for the handler ----------------------------

    #: The deferred request under way (see :meth:`defer_until_readable`); None while none.
    _deferred: Deferred | None = None

    def defer_until_readable(self, sock: Any, then: Callable[[bool], None],
                             timeout: float | None) -> bool:
        """Finish this request later, when ``sock`` is readable, without holding a thread.

        For a ``do_*`` method whose answer depends on another socket (a proxy waiting for
        its upstream): called as the method's last action. On a server that can wait for
        it (:class:`~minihttp.eventloop.PooledHTTPServer` serving on its event loop) it returns
        True; the method must then return at once, and the server later calls
        ``then(True)`` once ``sock`` is readable, or ``then(False)`` when ``timeout``
        seconds passed first. ``then`` goes on with the response as the method would have
        (errors it raises are handled as the method's), and may defer again. Elsewhere it
        returns False and the method simply waits itself.

        Why: on an event loop a handler that blocks for a round trip stalls every other
        connection (or costs a thread hand-over); deferred, the loop serves others
        meanwhile and the request holds no thread at all.

        The server learns of the deferral from what ``handle_one_request`` and
        ``resume_request`` return (a :class:`Deferred`). A handler class that overrides
        either of them (code written for ``http.server`` returns None) is therefore never
        deferred: this returns False and the method waits itself.
        """
        defer = getattr(self.server, "defer_readable", None)
        if defer is None:
            return False
        ok = _defer_ok.get(type(self))
        if ok is None:
            ok = _may_defer(type(self))
        if not ok or not defer(self):
            return False
        self._deferred = Deferred(sock, then, timeout)
        return True

    def defer_until_writable(self, then: Callable[[bool], None],
                             timeout: float | None, sock: Any = None) -> bool:
        """Finish this request later, when the client's connection is writable again,
        without holding a thread: :meth:`defer_until_readable` for a response whose client
        reads slowly (a large body relayed to a slow reader). ``then(True)`` once the
        client's socket takes bytes again, ``then(False)`` after ``timeout`` seconds.

        Same contract as :meth:`defer_until_readable` (the method's last action; False on a
        server that cannot wait for it: the method then writes blocking, as usual). Useful
        with ``wfile.send_some()`` (send what the client takes now, keep the rest).
        ``sock``: another socket to wait for instead (a proxy's upstream taking a request
        body slowly); None: the client's connection.
        """
        defer = getattr(self.server, "defer_readable", None)
        if defer is None:
            return False
        ok = _defer_ok.get(type(self))
        if ok is None:
            ok = _may_defer(type(self))
        if not ok or not defer(self):
            return False
        self._deferred = Deferred(self.connection if sock is None else sock, then, timeout,
                                  True)
        return True

    def resume_request(self, ready: bool) -> Deferred | None:
        """Go on with a deferred request: ``then(ready)``, then finish the response as
        ``handle_one_request`` does, unless it deferred again (then that :class:`Deferred`
        is returned, else None). Called by the server."""
        deferred = self._deferred
        if deferred is None:
            raise RuntimeError("no deferred request to resume")
        self._deferred = None
        try:
            try:
                deferred.then(ready)
            except Exception as err:
                self._deferred = None
                self._method_failed(err)
        except Exception:
            self._request_failed()
            raise
        finally:
            again = self._deferred
            if again is None:
                self._end_request()
        return again

    def finish_deferred(self, until: float | None = None) -> None:
        """Wait on this thread for what a deferred request waits for, and finish it.

        For a thread that cannot hand the wait to an event loop (a handler that lost the
        loop, a server shutting down): the request then ends as if it never deferred.
        ``until`` (a ``time.monotonic()`` value) bounds every wait: past it the request
        resumes as timed out (a server whose shutdown grace is over).
        """
        deferred = self._deferred
        while deferred is not None:
            timeout = deferred.timeout
            if until is not None:
                left = max(until - time.monotonic(), 0.0)
                timeout = left if timeout is None else min(timeout, left)
            wait = _writable if deferred.writable else _readable
            deferred = self.resume_request(wait(deferred.sock, timeout))

    def _reject_head(self, err: HTTPError) -> None:
        """Answer a head that cannot be read (408, 414, 431, 400) and close."""
        self.command = None
        self.requestline = ""
        self.request_version = ""
        self.remote_user = None
        self._head = None
        self._linger = True
        try:
            self.send_error(err.status, None, err.message)
            self._end_request()
        except OSError as exc:
            error_log.debug("could not send %d: %r", err.status, exc)
        self.close_connection = True

    def parse_request(self) -> bool:
        """Parse the head in ``self._head`` (RFC 9112); False after an error was sent.

        Sets ``command``, ``path``, ``request_version``, ``requestline``, ``headers`` and
        ``close_connection``, and makes ``self.rfile`` the request body.
        """
        head = self._head
        if head is None:
            self._reset_request_line()
            head = self._read_rest_of_head()
            if head is None:
                return False
        limits = self._lim or self._limits()
        try:
            (method, path, version, _, headers, raw, content_length, chunked, keep_alive,
             expect_continue, requestline) = head_fields(head, limits)
        except HTTPError as err:
            self._reset_request_line()
            self._linger = True
            first = head.lstrip(b"\r\n")
            self.requestline = first[: first.find(b"\r\n")].decode("latin-1")
            self.send_error(err.status, None, err.message)
            return False
        self.raw_requestline = raw
        self.requestline = requestline
        self.command = method
        if path[1:2] == "/" and path[0] == "/":
            path = "/" + path.lstrip("/")  # gh-87389: not an open redirect to //host
        self.path = path
        self.request_version = version
        self.headers = headers
        allow = getattr(self.server, "forwarded_allow_ips", None)  # off: one getattr a request
        if allow and isinstance(allow, _ALLOW_TYPES):  # not a test's server=mock.Mock()
            forwarded.apply(self, allow)  # trusted proxy's client
        protocol = self.protocol_version
        self.close_connection = not keep_alive or protocol < "HTTP/1.1"
        if not expect_continue and not chunked and not content_length:
            self._body = self.rfile = EMPTY_BODY  # the common case: no body
            return True
        expect = expect_continue and protocol >= "HTTP/1.1"
        if not expect and not chunked and not content_length:
            self._body = self.rfile = EMPTY_BODY
            return True
        source = self._source()
        lazy = (expect and self._writer is not None and self.wfile is self._writer
                and type(self).handle_expect_100 is BaseHTTPRequestHandler.handle_expect_100)
        on_first = self._send_continue if lazy else None
        body: BodyReader
        if chunked:
            body = ChunkedBody(source, limits, on_first)
        elif content_length:
            body = LengthBody(source, content_length, on_first)
        else:
            body = EMPTY_BODY
        self._body = body
        self._expect_pending = lazy and not body.done
        self.rfile = body
        # The standard library's eager path: an overriding handle_expect_100 may refuse.
        return not (expect and not lazy and not self.handle_expect_100())

    def _reset_request_line(self) -> None:
        """Before an error answers a head that did not parse: no command, default version."""
        self.command = None
        version = self.default_request_version
        self.request_version = "HTTP/1.0" if version == "HTTP/0.9" else version
        self.close_connection = True

    def _read_rest_of_head(self) -> bytes | None:
        """Compat: ``raw_requestline`` was read by a custom loop; read the fields after it."""
        lines = [self.raw_requestline]
        size = len(lines[0])
        limits = self._limits()
        while True:
            line = self.rfile.readline(limits.max_head - size + 1)
            size += len(line)
            if not line or size > limits.max_head:
                self.requestline = ""
                self.send_error(431 if line else 400)
                return None
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)

    def send_options(self) -> None:
        """Answer ``OPTIONS`` (also ``OPTIONS *``): 204 with ``Allow`` (RFC 9110 section 9.3.7).

        What a handler that defines no ``do_OPTIONS`` answers, instead of 501: OPTIONS asks
        which methods the target supports, and the ``do_*`` methods are that answer. A
        subclass's own ``do_OPTIONS`` wins; it may call this for the plain case.
        """
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Allow", self._allow())
        self.end_headers()

    def _not_implemented(self) -> None:
        """501 with ``Allow`` listing the handler's ``do_*`` methods and OPTIONS (RFC 9110
        section 15.6.2)."""
        self._error_keepalive = True
        self._error_headers = [("Allow", self._allow())]
        try:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
        finally:
            self._error_keepalive = False
            self._error_headers = None

    def _method_failed(self, err: Exception) -> None:
        """``do_<command>`` raised: answer or close, as the state of the response allows."""
        if isinstance(err, HTTPError):
            # Raised while reading the body (408, 413, 400 on bad chunks).
            self._handler_error(err.status, err.close, None)
        elif isinstance(err, (ConnectionError, TimeoutError)):
            error_log.debug("%s: client connection lost: %r", self.address_string(), err)
            self.close_connection = True
            if self._writer is not None:
                self._writer.broken = True
        elif self._writer is None:
            raise err  # socketless: let the caller see it, as the standard library does
        else:
            self._handler_error(500, False, err)

    def _handler_error(self, status: int, close: bool, exc: BaseException | None) -> None:
        """A handler failed: 500 (or the error's status) if nothing was sent, else close."""
        if exc is not None:
            error_log.error("%s: exception in %s %r", self.address_string(), self.command,
                            getattr(self, "path", ""), exc_info=exc)
        writer = self._writer
        if writer is not None and not writer.discard_unsent():
            writer.abort()
            self.close_connection = True
            return
        self._headers_buffer = []
        self._resp_length = self._resp_te = None
        self._conn_header = False
        keep = not close and not self.close_connection
        self._error_keepalive = keep
        try:
            self.send_error(status)
        finally:
            self._error_keepalive = False
        if not keep:
            self.close_connection = True

    def _request_failed(self) -> None:
        """An exception escapes ``handle_one_request``: never reuse this connection."""
        self.close_connection = True
        if self._writer is not None:
            self._writer.broken = True

    def _end_request(self) -> None:
        """Complete the response, drain or refuse the unread body, write the access log."""
        writer = self._writer
        body = self._body
        self._body = None
        self._head = None
        if self._conn_rfile is not None:
            self.rfile = self._conn_rfile
            self._conn_rfile = None
        size: int | str
        if writer is not None and self.wfile is writer:
            size = writer.body_bytes
            # measured: the handler used to inline end() here and start() in end_headers,
            # reading and writing the writer's fields. Calling them is two Python calls,
            # ~0.9k of ~51k instructions per hello request; won back by deciding per
            # connection what was decided per response (setup's flush_headers check,
            # send_response's class lookup) and send_header's exact-str test. Instructions
            # per request (valgrind --tool=callgrind, PYTHONHASHSEED=0, on
            # benchmarks/cpu_hello.py's per_request(n), n=6000 minus n=1000): 51.0k before,
            # 51.9k with the two calls, 51.3k now. `python3 benchmarks/cpu_hello.py`, 10
            # runs alternating with the old tree: median 4.45 us before, 4.48 now (both
            # spread 4.1-5.6 on the shared machine); `--pooled`: the same within noise.
            try:
                ending = writer.end()  # the rules of how a response ends live there
            except ResponseNotSent as err:
                ending = err.ending
                error_log.debug("%s: could not send the response: %r",
                                self.address_string(), err.__cause__)
                self.close_connection = True
            if ending:  # not END_KEEP: close, and say so when it is the handler's bug
                self.close_connection = True
                if ending == END_SHORT:
                    error_log.error("%s: response to %r shorter than its Content-Length; "
                                    "closing", self.address_string(), self.requestline)
                elif ending == END_NO_RESPONSE and self.command is not None:
                    error_log.error("%s: handler for %r sent no response; closing",
                                    self.address_string(), self.requestline)
        else:
            size = "-"
            flush = getattr(self.wfile, "flush", None)
            if flush is not None:
                flush()
        if body is not EMPTY_BODY and body is not None:
            if not body.done:
                if not self.close_connection:
                    self._drain(body)
                if self.close_connection:
                    self._linger = True
            self._expect_pending = False  # set by parse_request for a body only
        self._conn_header = False
        self._status = self._resp_length = self._resp_te = None
        logged = self._log_code
        if logged is not None:
            self._log_code = None
            code, now = logged
            if _log_modes.get(type(self)) == 1 and self.remote_user is None:  # common, inlined
                # (measured: see logs.access_record)
                emit = access_record(self.client_address, self.requestline, code, size, now)
                if emit is not None:  # http.server's stderr, or a record through logging
                    self._log_access(code, size, True, emit, now)
            else:
                self._log_end(code, size, now)

    def _log_end(self, code: Any, size: Any, now: float) -> None:
        """The access line of a request of a class whose line is not the common one (see
        :data:`_log_modes`), or with an authenticated user, or the class's first."""
        log = _log_modes.get(type(self))
        if log is None:
            log = _log_mode(type(self))
        if log == 1:
            self._log_access(code, size, True, None, now)
        elif log == 2:  # an override: called as http.server calls it
            if isinstance(code, HTTPStatus):
                code = code.value
            self.log_message('"%s" %s %s', self.requestline, str(code), str(size))
        elif log:
            self._log_access(code, size, False)

    def _drain(self, body: BodyReader) -> None:
        """Discard the body the handler left unread, or decide to close instead."""
        if self._expect_pending and not body.started:
            self.close_connection = True  # the client waits for 100: don't make it send
            return
        limits = self._limits()
        try:
            if not body.discard(limits.max_discard, limits.discard_timeout):
                self.close_connection = True
        finally:
            if self.reader is not None:
                self.reader.set_body_timeout(limits.body_timeout)

    def _allow(self) -> str:
        cls = type(self)
        value = _allow_values.get(cls)
        if value is None:
            # OPTIONS is always answered (send_options when there is no do_OPTIONS).
            value = ", ".join(sorted({n[3:] for n in dir(cls)
                                      if n.startswith("do_") and callable(getattr(cls, n))}
                                     | {"OPTIONS"}))
            _allow_values[cls] = value
        return value

    # -- Expect: 100-continue (RFC 9110 section 10.1.1) --------------------------------

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue``; True to go on with the request.

        minihttp calls this when the handler first reads the body, unless a subclass
        overrides it: then it is called before dispatch, as in the standard library (send an
        error and return False to refuse the body).
        """
        self.send_response_only(HTTPStatus.CONTINUE)
        self.end_headers()
        return True

    def _send_continue(self) -> None:
        """First read of a body whose client waits for ``100 Continue``."""
        self._expect_pending = False
        writer = self._writer
        if writer is not None and not writer.started:
            writer.interim(f"{self.protocol_version} 100 Continue\r\n\r\n".encode("latin-1"))

    # -- building the response -----------------------------------------------------------

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Send and log an error response with an HTML body (escaped; none for HEAD).

        As in ``http.server``, ``message`` (default: the standard phrase) is the status
        line's reason phrase and the body's message, ``explain`` the body's explanation.
        Unlike it, a CR, LF or other control character in ``message`` cannot end the status
        line: it is a space in the reason phrase and the log (RFC 9112 section 4), and
        characters beyond latin-1 are ``?`` there (the standard library raises).
        """
        try:
            shortmsg, longmsg = self.responses[code]
        except KeyError:
            shortmsg, longmsg = "???", "???"
        if message is None:
            message = reason = shortmsg
        else:
            reason = reason_phrase(message)
        if explain is None:
            explain = longmsg
        self.log_error("code %d, message %s", code, reason)
        self.send_response(code, reason)
        if not self._error_keepalive:
            self.send_header("Connection", "close")
        for name, value in self._error_headers or ():
            self.send_header(name, value)
        body = None
        # No content for 1xx, 204, 205, 304 (RFC 9110 sections 15.3.5, 15.3.6, 15.4.5).
        if code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT,
                                        HTTPStatus.NOT_MODIFIED):
            content = self.error_message_format % {
                "code": code,
                "message": html.escape(message, quote=False),
                "explain": html.escape(explain, quote=False),
            }
            body = content.encode("UTF-8", "replace")
            self.send_header("Content-Type", self.error_content_type)
            self.send_header("Content-Length", str(len(body)))
        elif code == HTTPStatus.RESET_CONTENT:
            # RFC 9110 section 15.3.6 allows Content-Length: 0 on a 205, which frames it on a
            # kept-alive connection. Never on 1xx or 204 (section 8.6: MUST NOT), nor on 304,
            # where it would have to be the selected representation's length (section 8.6).
            self.send_header("Content-Length", "0")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Queue the status line plus ``Server`` and ``Date``; log the request."""
        cls = type(self)  # no per-connection copy: one instance name less (class docstring)
        fast = _fast_classes.get(cls)
        if fast is None:  # the class's first response
            fast = _fast_classes[cls] = (
                (1 + (_log_mode(cls) != 0)) if _is_fast_class(cls) else 0)
        if fast and message is None and self._head is not None:
            # The default methods, inlined: log_request (deferred to the request's end),
            # send_response_only, and the prebuilt status + Server line with the Date line.
            version = self.request_version
            if version != "HTTP/0.9":
                key = (code, self.protocol_version, self.server_version, self.sys_version)
                entry = _status_server_lines.get(key)
                now = _time()
                if entry is None or not 0.0 <= now - entry[2] < 1.0:  # a new second
                    entry = _status_server_lines[key] = self._status_server(key)
                if fast == 2:  # else the access log line would be dropped: skip it now
                    # http.server's line has send_response's time
                    self._log_code = (code, now)
                self._status = entry[0]
                self._headers_buffer.append(entry[1])
                return
        self.log_request(code)
        self.send_response_only(code, message)
        if fast:
            if self.request_version != "HTTP/0.9":
                names = (self.server_version, self.sys_version)
                line = _server_lines.get(names)
                if line is None:
                    line = _server_lines[names] = f"Server: {names[0]} {names[1]}\r\n".encode(
                        "latin-1")
                buf = self._headers_buffer
                buf.append(line)
                buf.append(_date_line if int(_time()) == _date_second else _now_date()[1])
        else:
            self.send_header("Server", self.version_string())
            self.send_header("Date", self.date_time_string())

    def _status_server(self, key: tuple[Any, str, str, str]) -> tuple[int, bytes, float]:
        """An entry of ``send_response``'s cache: (status, status line + Server line + Date
        line, the second of that Date). A clock set back makes the entry stale too."""
        code = int(key[0])
        if len(_status_server_lines) >= _FIELD_CACHE_MAX:
            _status_server_lines.clear()
        saved, self._headers_buffer = self._headers_buffer, []
        try:
            self.send_response_only(code)
            status_line = self._headers_buffer[0]
        finally:
            self._headers_buffer = saved
        date_line = _now_date()[1]
        return (code, status_line + f"Server: {key[2]} {key[3]}\r\n".encode("latin-1")
                + date_line, float(_date_second))

    def send_response_only(self, code: int, message: str | None = None) -> None:
        """Queue the status line only (no ``Server`` / ``Date``, no logging)."""
        if self.request_version == "HTTP/0.9":
            return
        self._status = code = int(code)
        try:
            buf = self._headers_buffer
        except AttributeError:
            buf = self._headers_buffer = []
        if message is None:
            key = (self.protocol_version, code)
            line = _status_lines.get(key)
            if line is None:
                reason = self.responses[code][0] if code in self.responses else ""
                line = f"{self.protocol_version} {code} {reason}\r\n".encode("latin-1")
                validate_field("Status", line.decode("latin-1")[:-2])
                _status_lines[key] = line
        else:
            text = f"{self.protocol_version} {code} {message}"
            validate_field("Status", text)
            line = (text + "\r\n").encode("latin-1", "strict")
        buf.append(line)

    def send_header(self, keyword: str, value: Any) -> None:
        """Queue a header field. Raises ValueError on CR, LF or NUL (header injection)."""
        if value.__class__ is not str:  # measured: cheaper than isinstance (see _end_request)
            value = str(value)
        key = (keyword, value)
        cached = _field_cache.get(key)
        if cached is None:
            validate_field(keyword, value)
            kind = _KINDS.get(keyword.lower(), _KIND_OTHER)
            if kind == _KIND_LENGTH:
                digits = value.strip(" \t")
                if not digits.isdigit() or not digits.isascii():
                    raise ValueError(f"invalid Content-Length {value!r}")
            cached = (f"{keyword}: {value}\r\n".encode("latin-1", "strict"), kind,
                      int(value) if kind == _KIND_LENGTH else 0)
            if len(_field_cache) >= _FIELD_CACHE_MAX:
                _field_cache.clear()
            _field_cache[key] = cached
        line, kind, length = cached
        if self.request_version != "HTTP/0.9":
            try:
                self._headers_buffer.append(line)
            except AttributeError:
                self._headers_buffer = [line]
        if kind:
            if kind == _KIND_LENGTH:
                self._resp_length = length
            elif kind == _KIND_CONNECTION:
                self._conn_header = True
                lowered = value.lower()
                if lowered == "close":
                    self.close_connection = True
                elif lowered == "keep-alive":
                    self.close_connection = False
            else:
                self._resp_te = value

    def end_headers(self) -> None:
        """End the head: choose the body framing and hand the head to ``wfile``."""
        length = self._resp_length
        if (length is not None and not self.close_connection and self._resp_te is None
                and self.command == "GET" and self.request_version == "HTTP/1.1"):
            writer = self._direct_writer
            status = self._status
            if (writer is not None and self.wfile is writer and status is not None
                    and status >= 200 and status != 204 and status != 304):
                # _framing's common case, inlined: a keep-alive HTTP/1.1 GET answered with a
                # Content-Length needs no added field; the head goes to the writer at once.
                buf = self._headers_buffer
                buf.append(b"\r\n")
                self._headers_buffer = []
                writer.start(b"".join(buf), LENGTH, length)
                return
        if self.request_version == "HTTP/0.9":
            return
        try:
            buf = self._headers_buffer
        except AttributeError:
            buf = self._headers_buffer = []
        writer = self._writer
        status = self._status
        if writer is not None and self.wfile is writer and status is not None and status >= 200:
            mode = self._framing(buf, status)
            buf.append(b"\r\n")
            if writer is self._direct_writer:
                self._headers_buffer = []
                writer.start(b"".join(buf), mode[0], mode[1])
                return
            self._pending_mode = mode
        else:
            buf.append(b"\r\n")
        self.flush_headers()

    def _framing(self, buf: list[bytes], status: int) -> tuple[int, int]:
        """RFC 9112 section 6.3: how this response's body is delimited; adds fields if needed."""
        length = self._resp_length
        if (length is not None and self._resp_te is None and status != 204 and status != 304
                and self.command != "HEAD" and self.command != "CONNECT"):
            mode = LENGTH  # the common case first: a final response with a Content-Length
        else:
            mode, length = self._other_framing(buf, status)
        if not self._conn_header and self.protocol_version >= "HTTP/1.1":
            if self.close_connection:
                buf.append(b"Connection: close\r\n")
            elif self.request_version == "HTTP/1.0":
                buf.append(b"Connection: keep-alive\r\n")  # RFC 9112 section 9.3
        return mode, length

    def _other_framing(self, buf: list[bytes], status: int) -> tuple[int, int]:
        """``_framing`` for everything but a body with a Content-Length."""
        http11 = self.request_version == "HTTP/1.1" and self.protocol_version >= "HTTP/1.1"
        if not body_allowed(self.command or "GET", status):
            mode, length = NOBODY, 0
        elif self._resp_te is not None:
            if self._resp_te.lower().replace(" ", "").endswith("chunked") and http11:
                mode, length = PASSTHROUGH, 0
            else:
                mode, length = CLOSE, 0
                self.close_connection = True
        elif self._resp_length is not None:
            mode, length = LENGTH, self._resp_length
        elif http11 and not self.close_connection:
            mode, length = CHUNKED, 0
            buf.append(b"Transfer-Encoding: chunked\r\n")
        else:
            mode, length = CLOSE, 0
            self.close_connection = True
        return mode, length

    def flush_headers(self) -> None:
        """Hand the queued head to ``wfile`` (buffered until the request ends)."""
        try:
            buf = self._headers_buffer
        except AttributeError:
            return
        if not buf:
            return
        data = b"".join(buf)
        self._headers_buffer = []
        writer = self._writer
        if writer is not None and self.wfile is writer:
            pending = self._pending_mode
            if pending is not None:
                self._pending_mode = None
                writer.start(data, pending[0], pending[1])
                return
            if self._status is not None and self._status < 200:
                writer.interim(data)
                self._status = None
                return
        self.wfile.write(data)

    # -- logging -------------------------------------------------------------------------

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Log an accepted request (CLF); called by ``send_response``.

        During a request the line is written when the request ends, with the body size.
        """
        if size == "-" and self._head is not None:
            log = _log_modes.get(type(self))
            if log == 0 or (log is None and _log_mode(type(self)) == 0):
                return  # the access log provably does nothing: keep no state for it
            # http.server's line has this time (send_response's)
            self._log_code = (code, _time())
            return
        if isinstance(code, HTTPStatus):
            code = code.value
        self.log_message('"%s" %s %s', self.requestline, str(code), str(size))

    def log_error(self, format: str, *args: Any) -> None:
        """Log an error response on ``minihttp.error`` (INFO: it is usually the client's).

        Unless logging is configured for it, printed on stderr as ``http.server`` does (see
        :mod:`minihttp.logs`).
        """
        if type(self).log_message is not _base_log_message:
            self.log_message(format, *args)  # the standard library's route
            return
        emit = error_route()
        if emit is not None:
            self._log_line(emit, error_log, control_escape(format % args))

    def log_message(self, format: str, *args: Any) -> None:
        """Log a line on ``minihttp.access``: ``host - - [date] message``, control chars
        escaped. Unless logging is configured for it, printed on stderr as ``http.server``
        does (see :mod:`minihttp.logs`)."""
        emit = access_route()
        if emit is not None:
            self._log_line(emit, access_log, control_escape(format % args))

    def _log_access(self, code: Any, size: Any, plain: bool, emit: Emit | None = None,
                    now: float = -1.0) -> None:
        """The default ``log_request`` line, at the request's end: ``log_message``'s line
        without its ``%``-formatting. When ``plain`` (the class keeps ``address_string``,
        ``log_date_time_string`` and ``monthname``) and the line goes to the command
        line's handler, only its fields are handed over: the writer's thread formats it
        (measured, benchmarks/cpu_hello.py --pooled --log cli: formatting here cost
        about 1 us per request on the event loop). ``_end_request`` hands the command
        line's records over itself (:data:`minihttp.logs.access_record`, one call) and
        passes the route and time it found for the others.

        measured (instructions per request, valgrind --tool=callgrind, PYTHONHASHSEED=0,
        benchmarks/cpu_hello.py's handler over its fake socket with ``--log cli`` to
        /dev/null, the writer's batch held to the end and written by ``flush``; n=6000
        minus n=1000; benchmarks/icount_hello.py): quiet 51.7-51.9k;
        logging 65.0k before the logcost branch (61.9k with RECHECK raised: under
        valgrind the route's full check runs on every request, for real at most once a
        millisecond), 60.2-60.4k after it (58.1k with RECHECK raised): ~0.9k of it
        formatting on the writer's thread (a repeated record reuses its line, see
        ``render_access``), the rest the request path. Wall-clock figures on the shared
        machine stay within their noise (benchmarks/cpu_hello.py --pooled --log cli, best
        of 5, two alternated runs: quiet/logging 0.84 and 0.81 before, 0.87 and 0.91
        after; indicative). The logcost2 branch, measured as cli minus quiet, mean of
        PYTHONHASHSEED 0..3 (a single seed moves either figure by up to ~0.8k with the
        memory layout): 9.9k before, 7.4k after (4.4k with RECHECK raised; the rest is
        the full check valgrind's slowness runs on nearly every request)."""
        if emit is None:
            if now < 0.0:
                now = _time()
            emit = access_route(now)
            if emit is None:
                return
        # An HTTPStatus formats as its number in an f-string (its str() may not, on 3.10).
        if not plain or emit is VIA_LOGGING or self.remote_user is not None:
            self._log_line(emit, access_log,
                           control_escape(f'"{self.requestline}" {code} {size}'))
        elif emit is TO_STDERR:
            addr = self.client_address
            line = (f'{addr[0] if addr else "-"} - - [{log_date(now)}] '
                    f'"{self.requestline}" {code} {size}')
            if line.isprintable() and "\\" not in line:
                emit(line)
            else:  # escape the message only, as log_message does
                self._log_line(emit, access_log,
                               control_escape(f'"{self.requestline}" {code} {size}'))
        else:
            emit((self.client_address, log_date(now), self.requestline, code, size))

    def _log_line(self, emit: Callable[[str], None], logger: logging.Logger, message: str) -> None:
        """``host - user [date] message`` to ``emit`` (a route of :mod:`minihttp.logs`)."""
        user = self.remote_user
        if user is not None:  # escaped as request data; a space would split the field
            user = control_escape(user).replace(" ", "\\x20")
            if emit is VIA_LOGGING:
                logger.info("%s - %s [%s] %s", self.address_string(), user,
                            self.log_date_time_string(), message)
            else:
                emit(f"{self.address_string()} - {user} [{self.log_date_time_string()}] "
                     f"{message}")
        elif emit is VIA_LOGGING:
            logger.info("%s - - [%s] %s", self.address_string(), self.log_date_time_string(),
                        message)
        else:
            emit(f"{self.address_string()} - - [{self.log_date_time_string()}] {message}")

    # -- small helpers of the standard library -------------------------------------------

    def version_string(self) -> str:
        """The ``Server`` header value."""
        return self.server_version + " " + self.sys_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """An HTTP date (IMF-fixdate) for ``timestamp`` (default: now)."""
        if timestamp is None:
            return _now_date()[0]
        return _http_date(timestamp)

    def log_date_time_string(self) -> str:
        """The current local time formatted for logging."""
        monthname = self.monthname
        if monthname is _MONTHS:
            return log_date(_time())  # cached for the second
        year, month, day, hh, mm, ss, _x, _y, _z = time.localtime(time.time())
        return f"{day:02d}/{monthname[month]!s:>3}/{year:04d} {hh:02d}:{mm:02d}:{ss:02d}"

    def address_string(self) -> str:
        """The client's address (host part)."""
        addr = self.client_address
        return str(addr[0]) if addr else "-"


@dataclasses.dataclass(frozen=True, slots=True)
class Deferred:
    """A request whose handler deferred the rest of its response
    (:meth:`BaseHTTPRequestHandler.defer_until_readable`): what ``handle_one_request`` and
    ``resume_request`` return instead of None. The server waits until ``sock`` is readable
    or ``timeout`` seconds pass (None: no limit), then calls ``resume_request(ready)``,
    which calls ``then(ready)``."""

    sock: Any
    then: Callable[[bool], None]
    timeout: float | None
    #: Wait until ``sock`` (the client's own connection) is writable instead
    #: (:meth:`BaseHTTPRequestHandler.defer_until_writable`).
    writable: bool = False


_base_handle_one_request = BaseHTTPRequestHandler.handle_one_request
_base_resume_request = BaseHTTPRequestHandler.resume_request
#: Handler class -> whether its requests may be deferred (it keeps both methods whose
#: return value carries the deferral to the server).
_defer_ok: dict[type, bool] = {}


def _may_defer(cls: type) -> bool:
    ok = _defer_ok.get(cls)
    if ok is None:
        ok = _defer_ok[cls] = (
            getattr(cls, "handle_one_request", None) is _base_handle_one_request
            and getattr(cls, "resume_request", None) is _base_resume_request)
    return ok


def _writable(sock: Any, timeout: float | None) -> bool:
    """Wait until ``sock`` is writable (True) or ``timeout`` seconds pass (False); a closed
    or broken socket counts as writable (the caller's next send reports it)."""
    wait = None if timeout is None else max(timeout, 0.0)
    try:
        if not hasattr(select, "poll"):  # Windows
            return bool(select.select([], [sock], [], wait)[1])
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(None if wait is None else wait * 1000.0))
    except (OSError, ValueError, TypeError):
        return True


def _readable(sock: Any, timeout: float | None) -> bool:
    """Wait until ``sock`` is readable (True) or ``timeout`` seconds pass (False).

    A closed or broken socket counts as readable: the caller's next I/O reports it.
    """
    wait = None if timeout is None else max(timeout, 0.0)
    try:
        if not hasattr(select, "poll"):  # Windows
            return bool(select.select([sock], [], [], wait)[0])
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(None if wait is None else wait * 1000.0))
    except (OSError, ValueError, TypeError):
        return True


#: The ``do_`` method names of the common methods, prebuilt for dispatch (others are built
#: per request: a client chooses them, so they are not kept).
_DO_NAMES = {m: "do_" + m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}

_base_log_message = BaseHTTPRequestHandler.log_message
_base_version_string = BaseHTTPRequestHandler.version_string
_base_date_time_string = BaseHTTPRequestHandler.date_time_string
_base_send_header = BaseHTTPRequestHandler.send_header
_base_log_request = BaseHTTPRequestHandler.log_request
_base_send_response_only = BaseHTTPRequestHandler.send_response_only
_base_address_string = BaseHTTPRequestHandler.address_string
_base_log_date_time_string = BaseHTTPRequestHandler.log_date_time_string


def _is_fast_class(cls: type) -> bool:
    """Whether ``cls`` keeps every default that ``send_response``'s fast path inlines."""
    return (getattr(cls, "version_string", None) is _base_version_string
            and getattr(cls, "date_time_string", None) is _base_date_time_string
            and getattr(cls, "send_header", None) is _base_send_header
            and getattr(cls, "log_request", None) is _base_log_request
            and getattr(cls, "send_response_only", None) is _base_send_response_only)


def _does_nothing(func: Any) -> bool:
    """True for a plain function whose body is only ``pass`` / a docstring / ``return None``.

    Handlers written for ``http.server`` silence the access log by overriding
    ``log_message`` with ``pass``; calling it would cost a method call and two ``str()`` per
    request for nothing, and skipping a call that provably has no effect changes nothing.
    """
    code = getattr(func, "__code__", None)
    if code is None or getattr(func, "__defaults__", None) or getattr(func, "__closure__", None):
        return False
    import dis

    for ins in dis.get_instructions(code):
        if ins.opname in ("RESUME", "NOP", "RETURN_VALUE", "CACHE"):
            continue
        if ins.opname in ("LOAD_CONST", "RETURN_CONST") and ins.argval is None:
            continue
        return False
    return True


#: Handler class -> 0 (access logging off: skip), 1 (our log_message and its helpers: the
#: line is built inline), 2 (an overriding log_message that does something: call it),
#: 3 (our log_message, some of address_string / log_date_time_string / monthname
#: overridden: call them).
_log_modes: dict[type, int] = {}


def _log_mode(cls: type) -> int:
    mode = _log_modes.get(cls)
    if mode is None:
        func = getattr(cls, "log_message", None)
        mode = 1 if func is _base_log_message else 0 if _does_nothing(func) else 2
        if mode == 1 and (getattr(cls, "address_string", None) is not _base_address_string
                          or getattr(cls, "log_date_time_string", None)
                          is not _base_log_date_time_string
                          or getattr(cls, "monthname", None) is not _MONTHS):
            mode = 3
        _log_modes[cls] = mode
    return mode


_base_flush_headers = BaseHTTPRequestHandler.flush_headers


# -- the rest of http.server's names (PEP 562) -----------------------------------------------
# Code ported from http.server imports every name of its __all__ from here. These live in
# modules that import this one, so they are loaded on first use, not at the top.

if TYPE_CHECKING:
    from .https import HTTPSServer, ThreadingHTTPSServer
    from .static.handler import SimpleHTTPRequestHandler

#: Names served lazily: attribute -> module that defines it.
_LAZY = {
    "SimpleHTTPRequestHandler": "minihttp.static.handler",
    "HTTPSServer": "minihttp.https",
    "ThreadingHTTPSServer": "minihttp.https",
}

#: http.server names minihttp does not provide, and why (raised as ImportError).
_NOT_PROVIDED = {
    "CGIHTTPRequestHandler": (
        "minihttp does not provide CGIHTTPRequestHandler: it is deprecated in http.server "
        "since Python 3.13, for removal in 3.15 (a process per request, and the script's "
        "environment built from request data). Keep http.server for CGI scripts, or port "
        "each script to a handler's do_GET / do_POST."
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        reason = _NOT_PROVIDED.get(name)
        if reason is not None:
            # ImportError, not AttributeError: "from minihttp.server import X" shows this
            # text (Python would replace an AttributeError by "cannot import name"). So
            # hasattr() raises it too, on purpose: a port that needs CGI fails loudly.
            raise ImportError(reason, name=__name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
