"""The PEP 3333 gateway: a ``BaseHTTPRequestHandler`` that runs a WSGI application.

Every registered request method (:data:`METHODS`) is dispatched to
:meth:`WSGIRequestHandler.run_application`, so the handler machinery underneath does what it
does for any handler: strict parsing, keep-alive, the body reader (exactly the body, chunked
decoded, ``100 Continue`` on the first read, an unread body drained or the connection
closed), Content-Length enforcement, automatic chunking, HEAD/204/304 without a body, one
send per response, the access log. It runs on
:class:`~minihttp.eventloop.PooledHTTPServer` (an application that blocks loses the event
loop to a pool thread after ``inline_budget``, as any handler does) and on
:class:`~minihttp.server.ThreadingHTTPServer`.

Rules of this module:

* Nothing is sent before the application yields its first non-empty block, returns, or
  calls ``write()`` (PEP 3333 "Buffering and Streaming"), so an error before then gets a
  clean ``500`` (the traceback goes to the ``minihttp.error`` log, never to the client).
  After the head is out an error can only cut the response: the connection is closed, so
  the client sees an incomplete message, never a wrong one.
* ``close()`` of the returned iterable is called exactly once, whatever happened: a normal
  end, an application error, or the client leaving mid-response. A response without a
  body (HEAD, 204, 304) stops iterating once its head is out: an endless stream answered
  to HEAD would otherwise run forever, every block dropped.
* Blocks are never held back: each block of a streamed (generic iterable) response is
  flushed as it comes (the first one together with the head: a one-block response is still
  one send). A list or tuple result (all blocks known) is sent with one send, with a
  Content-Length computed when the application gave none; a streamed result without
  Content-Length goes out chunked (HTTP/1.1) or close-delimited (HTTP/1.0).
* ``wsgi.file_wrapper`` over a regular file is sent with ``sendfile``.
* A failure while reading ``wsgi.input`` (413, 400, 408, the client gone) decides the
  answer even if the framework caught it and built a response of its own.
* A client that disappears is not an application error: logged at DEBUG, no 500.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterable
from typing import Any

from .. import __version__
from .._body import EMPTY_BODY
from .._writer import LENGTH, ResponseWriter
from ..errors import HTTPError
from ..http11 import body_allowed
from ..logs import error_log
from ..server import BaseHTTPRequestHandler
from .body import FileWrapper, Input
from .environ import base_environ, normalize_root
from .repeat import ConnectionEnviron, reusable
from .response import Head, check_headers

__all__ = ["METHODS", "StartResponse", "WSGIApplication", "WSGIRequestHandler",
           "make_handler"]

#: ``start_response(status, headers, exc_info=None) -> write``
StartResponse = Callable[..., Callable[[bytes], None]]
#: ``application(environ, start_response) -> iterable of bytes``
WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


#: Handler class -> whether it keeps minihttp's own ``send_header``: then the
#: application's checked fields join the head as one piece.
_plain_fields: dict[type, bool] = {}


class WSGIRequestHandler(BaseHTTPRequestHandler):
    """Serve ``application`` (a class attribute: see :func:`make_handler`) over HTTP/1.1.

    ``root_path`` (``/app``): the application is mounted there; requests under it get
    ``SCRIPT_NAME=/app`` and the rest as ``PATH_INFO``, others a 404 from the gateway.
    The server's ``wsgi_multiprocess`` attribute (set by the ``--workers`` command line)
    becomes ``wsgi.multiprocess``.
    """

    protocol_version = "HTTP/1.1"
    server_version = "minihttp/" + __version__
    #: The WSGI application (set on a subclass, as a staticmethod).
    application: WSGIApplication | None = None
    #: Normalized mount point ("" or "/a/b"); use :func:`make_handler` to set it.
    root_path: str = ""
    #: ``environ["wsgi.file_wrapper"]``.
    wsgi_file_wrapper: type[FileWrapper] = FileWrapper

    # Per request.
    _app_head: Head | None
    _head_sent: bool
    #: Set by ``_gone`` (the connection then closes: never reset).
    _client_gone = False
    #: The connection's environ (built on its first request; see :mod:`minihttp.wsgi.repeat`).
    _wsgi_conn: ConnectionEnviron | None = None
    #: This class's additions to the instance's names (see BaseHTTPRequestHandler's
    #: docstring: the common path sets no others).
    _instance_names = ("_wsgi_conn", "_app_head", "_head_sent")

    def _connection(self) -> ConnectionEnviron:
        """The connection's environ keys and memory (made on its first request)."""
        peer = self.client_address
        base = base_environ(
            self.server, tls=hasattr(self.request, "getpeercert"), root=self.root_path,
            multiprocess=bool(getattr(self.server, "wsgi_multiprocess", False)),
            file_wrapper=self.wsgi_file_wrapper, client_address=peer)
        conn = self._wsgi_conn = ConnectionEnviron(base, peer, self.root_path,
                                                   reusable(type(self)))
        return conn

    # -- one request ----------------------------------------------------------------------

    def run_application(self) -> None:
        """Call the application for the parsed request and send what it answers."""
        app = self.application
        if app is None:
            raise RuntimeError("no WSGI application: build the handler with make_handler(app)")
        body = self.rfile
        recorder = None if body is EMPTY_BODY else Input(body)
        conn = self._wsgi_conn
        if conn is None:
            conn = self._connection()
        environ = conn.environ(self, recorder or body)
        if environ is None:
            self.send_error(404, None, f"Outside the application's root path {self.root_path}")
            return
        self._app_head = None
        self._head_sent = False
        complete = False
        result: Any = None
        try:
            try:
                result = app(environ, self.start_response)
                if recorder is not None and recorder.error is not None and not self._head_sent:
                    raise recorder.error
                self._send_result(result)
                complete = True
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            self._failed(exc, recorder, complete)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = run_application
    # (and every other registered method: see METHODS below the class)

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: check and keep the head; returns ``write``.

        Called again with ``exc_info`` it replaces the head while nothing is sent, and
        re-raises the application's exception once the head is out.
        """
        if exc_info is not None:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._app_head is not None:
            raise RuntimeError("start_response() called a second time without exc_info "
                               "(PEP 3333)")
        self._app_head = check_headers(status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: send ``data`` now (the head first if it is not out yet)."""
        if self._app_head is None:
            raise RuntimeError("write() called before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        if not self._head_sent:
            self._send_head(None)
        wfile = self.wfile
        try:
            wfile.write(data)
            wfile.flush()
        except OSError:
            self._gone()
            raise

    # -- sending --------------------------------------------------------------------------

    def _send_head(self, total: int | None = None, exact: bool = False) -> None:
        """Queue the application's head. ``total``: the body's size when the gateway knows
        it (``exact``: a file's), declared as Content-Length if the application sent none
        and :meth:`_length_for` says it may be.

        The application's fields were checked and encoded by ``start_response``
        (:class:`~minihttp.wsgi.response.Head`): they join the head as one piece, in the
        application's order, with only the Content-Length through ``send_header`` (the
        handler frames the body by it). A subclass with its own ``send_header`` gets
        every field through it instead.
        """
        head = self._app_head
        if head is None:
            raise RuntimeError("the application returned without calling start_response()")
        # Unpacked: a NamedTuple's fields by name are a descriptor call each.
        code, reason, headers, length, has_server, has_date, before, after = head
        if has_server or has_date:
            self.log_request(code)
            self.send_response_only(code, reason)
            if not has_server:
                self.send_header("Server", self.version_string())
            if not has_date:
                self.send_header("Date", self.date_time_string())
        else:
            self.send_response(code, reason)
        if total is not None:  # the gateway's length, only where the application gave none
            total = None if length is not None else self._length_for(total, exact)
        plain = _plain_fields.get(type(self))
        if plain is None:
            plain = _plain_fields[type(self)] = type(self).send_header is _base_send_header
        if plain:
            buf = self._headers_buffer
            buf.append(before)
            if length is not None:
                self.send_header("Content-Length", length)
                if after:
                    buf.append(after)
            elif total is not None:
                self.send_header("Content-Length", str(total))
        else:
            send_header = self.send_header
            for name, value in headers:
                send_header(name, value)
            if total is not None:
                send_header("Content-Length", str(total))
        self._head_sent = True
        self.end_headers()

    def _length_for(self, total: int, exact: bool = False) -> int | None:
        """A Content-Length of ``total`` computed by the gateway, or None to declare none.

        Never over the application's own, nor for 204/304 (no content: RFC 9110 sections
        8.6, 15.3.5, 15.4.5). For HEAD the length must be the GET's (RFC 9110 section
        9.3.2): a file's size is, and so is a body the application produced anyway; an
        empty HEAD body says nothing about the GET's, so no length is declared.
        """
        head = self._app_head
        if head is None or head.length is not None:
            return None
        command = self.command or "GET"
        if command == "HEAD":
            code = head.code
            return total if (exact or total) and code != 204 and code != 304 else None
        return total if body_allowed(command, head.code) else None

    def _send_result(self, result: Any) -> None:
        """Send the blocks of the application's iterable (see the module's rules)."""
        wfile = self.wfile
        kind = type(result)
        if kind is list or kind is tuple:
            if not self._head_sent:
                total = 0
                for block in result:
                    if type(block) is not bytes:
                        raise TypeError(f"the application yielded {type(block).__name__}, "
                                        "not bytes")
                    total += len(block)
                self._send_head(total)
            try:
                for block in result:
                    if block:
                        wfile.write(block)
            except OSError:
                self._gone()
            return
        if isinstance(result, FileWrapper) and self._sendfile(result):
            return
        for block in result:
            if type(block) is not bytes:
                block = _as_bytes(block)
            if not block:
                continue
            if not self._head_sent:
                self._send_head(None)
                if not self._may_carry_body():
                    return  # HEAD, 204, 304: the rest would be dropped (and may never end)
            try:
                wfile.write(block)
                wfile.flush()  # never hold a block back (PEP 3333)
            except OSError:
                self._gone()
                return
        if not self._head_sent:
            self._send_head(0)

    def _may_carry_body(self) -> bool:
        head = self._app_head
        return head is None or body_allowed(self.command or "GET", head.code)

    def _sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a regular file with ``sendfile``; False to iterate the wrapper instead."""
        writer = self.wfile
        file = wrapper.filelike
        if not isinstance(writer, ResponseWriter) or isinstance(file, io.TextIOBase):
            return False
        try:
            info = os.fstat(file.fileno())
            offset = file.tell()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation included
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        head = self._app_head
        count = max(info.st_size - offset, 0)
        if head is not None and head.length is not None:
            count = min(count, int(head.length))
        if not self._head_sent:
            self._send_head(count, exact=True)
        if writer.mode == LENGTH:
            count = min(count, writer.remaining)
        try:
            writer.sendfile(file, offset, count)
        except OSError:
            self._gone()
        return True

    # -- failures -------------------------------------------------------------------------

    def _gone(self) -> None:
        """The client left while we were sending: stop, close, call it nobody's error."""
        self._client_gone = True
        self.close_connection = True
        wfile = self.wfile
        if isinstance(wfile, ResponseWriter):
            wfile.broken = True

    def _failed(self, exc: Exception, recorder: Input | None, complete: bool) -> None:
        """Something raised: answer with the status it deserves, or cut the response."""
        input_error = None if recorder is None else recorder.error
        if self._client_gone or isinstance(input_error, OSError):
            error_log.debug("%s: client connection lost during %s %r: %r",
                            self.address_string(), self.command, self.path, exc)
            self._gone()
            return
        err = input_error if isinstance(input_error, HTTPError) else exc
        if isinstance(err, HTTPError):
            self._replace_with_error(err.status)
            return
        error_log.error("%s: exception in the WSGI application for %s %r",
                        self.address_string(), self.command, self.path, exc_info=exc)
        if complete:
            self.close_connection = True  # close() failed after a whole response: keep it
            return
        self._replace_with_error(500)

    def _replace_with_error(self, status: int) -> None:
        """``status`` if nothing of the response is on the wire yet; else cut it."""
        wfile = self.wfile
        if self._head_sent:
            discard = getattr(wfile, "discard_unsent", None)
            if discard is None or not discard():
                if isinstance(wfile, ResponseWriter):
                    wfile.abort()
                self.close_connection = True
                return
        self._headers_buffer = []
        self._head_sent = True
        self.close_connection = True
        self.send_error(status)


#: The methods of IANA's HTTP Method Registry (RFC 9110 section 16.1): each goes to the
#: application; any other gets the handler's 501 with ``Allow`` (RFC 9110 section 15.6.2).
#: Set as class attributes rather than found by a ``__getattr__``: a class with one makes
#: every attribute lookup on the handler slower (measured: 1.4 us of a 10 us WSGI hello).
METHODS = (
    "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY", "DELETE",
    "GET", "HEAD", "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
    "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "OPTIONS", "ORDERPATCH", "PATCH", "POST", "PRI",
    "PROPFIND", "PROPPATCH", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "TRACE", "UNBIND",
    "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
)
for _method in METHODS:
    setattr(WSGIRequestHandler, "do_" + _method, WSGIRequestHandler.run_application)


_base_send_header = BaseHTTPRequestHandler.send_header


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"the application yielded {type(data).__name__}, not bytes")


def make_handler(app: WSGIApplication, *, root_path: str = "",
                 base: type[WSGIRequestHandler] = WSGIRequestHandler
                 ) -> type[WSGIRequestHandler]:
    """A handler class serving ``app`` (mounted at ``root_path``): pass it to a server."""
    if not callable(app):
        raise TypeError(f"WSGI application must be callable, not {type(app).__name__}")
    attrs = {"application": staticmethod(app), "root_path": normalize_root(root_path)}
    return type(f"{base.__name__}For{_name_of(app)}", (base,), attrs)


def _name_of(app: Any) -> str:
    name = getattr(app, "__name__", None) or type(app).__name__
    return "".join(c for c in str(name) if c.isalnum()) or "App"
