"""A server-side TLS handshake driven by readiness events: it never blocks its caller.

A blocking handshake holds a thread until the client has finished it, so a few hundred TCP
connections that never send a ClientHello hold every worker (issue 12: a normal HTTPS client
then waited 10 s and failed). :class:`Handshake` instead takes one non-blocking step each time
the socket is ready, and says what it waits for next, so the event loop can park the
connection like any other and only ``head_timeout`` bounds it.

Rules of this module:

* Whoever creates a :class:`Handshake` owns the connection and closes it; a handshake never
  closes a socket (``close()`` is a convenience for that owner). The descriptor belongs to
  :attr:`Handshake.sock`: the accepted socket until the client's first byte arrives, then
  the :class:`ssl.SSLSocket`, which takes the descriptor over (``wrap_socket`` *detaches*
  the accepted socket: it then has no descriptor, and shutting it down does nothing).
  So the owner must read ``sock`` again after every :meth:`Handshake.step`.
* During the handshake the socket is non-blocking and only :meth:`Handshake.step` does I/O
  on it. :meth:`~Handshake.step` returns :data:`Step.WANT_READ` or :data:`Step.WANT_WRITE`
  (call again when the socket is readable / writable), :data:`Step.DONE` or
  :data:`Step.FAILED`; it never raises for anything the client does, and once it returned
  ``DONE`` or ``FAILED`` it returns the same again without I/O.
* After ``DONE`` the socket is back in blocking mode with no timeout (``settimeout(None)``),
  as the rest of the server expects of a fresh connection (the handler's ``setup()`` sets
  its own timeouts). Bytes OpenSSL already decrypted are not visible to a poller:
  :meth:`~Handshake.pending` says how many there are (read them before parking).
* No clock in here: the deadline is the owner's. The event-loop server gives the handshake
  the wait for the first request: ``head_timeout`` from accept covers the handshake and the
  arrival of the first request byte, then the head has ``head_timeout`` from that byte, as
  for a plain connection (slowloris: a deadline per phase, not per ``recv``).
* The accepted socket is not wrapped before the client's first byte: an idle connection
  costs no SSL object (memory, with 1,000 of them). That byte is looked at with ``MSG_PEEK``:
  a TLS record never starts with an ASCII letter, so one that does is a plain-HTTP request
  sent to the HTTPS port. Its head is read (up to :data:`PLAIN_HEAD_MAX` bytes, so that
  closing does not reset the connection under the answer) and answered with a short
  ``400`` saying to use https, as nginx does; the step then returns ``FAILED``.
* EOF, a reset, garbage or a TLS alert before ``DONE``: ``FAILED``, with the reason in
  :attr:`Handshake.error`, logged at DEBUG on ``minihttp.error`` (never a traceback: a
  client that goes away mid-handshake is routine, not a server error).
"""

from __future__ import annotations

import enum
import socket
import ssl
from typing import Any

from minihttp.logs import control_escape, error_log

__all__ = ["PLAIN_HEAD_MAX", "PLAIN_HTTP_RESPONSE", "Handshake", "Step"]


class Step(enum.Enum):
    """What a handshake step came to."""

    #: Call ``step()`` again when the socket is readable.
    WANT_READ = "want read"
    #: Call ``step()`` again when the socket is writable (the send buffer was full).
    WANT_WRITE = "want write"
    #: The handshake is complete: serve HTTP on ``Handshake.sock``.
    DONE = "done"
    #: The handshake failed (``Handshake.error`` says why): close the connection.
    FAILED = "failed"


#: Most bytes of a plain-HTTP request head read before it is answered (the rest, if any,
#: may make the kernel reset the connection under the answer: best effort, like nginx).
PLAIN_HEAD_MAX = 8192

_PLAIN_BODY = b"This port speaks HTTPS: use an https:// URL.\n"
#: The answer to a plain-HTTP request sent to the HTTPS port (RFC 9110 section 15.5.1).
PLAIN_HTTP_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Connection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_PLAIN_BODY)).encode() + b"\r\n\r\n" + _PLAIN_BODY)

#: First bytes of a plain-HTTP request (a method token starts with a letter); a TLS record
#: starts with its content type, 20-23, and an SSLv2-style hello with a byte >= 0x80.
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_FINAL = (Step.DONE, Step.FAILED)


class Handshake:
    """One server-side TLS handshake on an accepted socket, one non-blocking step at a time.

    ``Handshake(context, sock, addr)`` puts ``sock`` in non-blocking mode; call
    :meth:`step` at once or when the poller says the socket is ready. ``addr`` only names the
    client in the log.
    """

    __slots__ = ("_context", "_plain", "addr", "error", "result", "sock")

    def __init__(self, context: ssl.SSLContext, sock: socket.socket, addr: Any = None) -> None:
        self._context = context
        #: The socket that holds the descriptor now (see the module rules).
        self.sock: socket.socket = sock
        self.addr = addr
        #: Why the handshake failed (None unless ``result`` is FAILED).
        self.error: str | None = None
        #: DONE or FAILED once the handshake has ended, else None.
        self.result: Step | None = None
        #: A plain-HTTP request being read before it is answered (None: not seen).
        self._plain: bytearray | None = None
        try:
            sock.setblocking(False)
        except OSError as exc:
            self._fail(_describe(exc))

    @property
    def wrapped(self) -> bool:
        """True once the socket is an SSLSocket (the client's first byte came)."""
        return isinstance(self.sock, ssl.SSLSocket)

    def step(self) -> Step:
        """Make what progress the socket allows now, without blocking; what to wait for."""
        if self.result is not None:
            return self.result
        try:
            if not self.wrapped:
                waiting = self._first_bytes()
                if waiting is not None:
                    return waiting
            sock = self.sock
            assert isinstance(sock, ssl.SSLSocket)
            sock.do_handshake()
        except ssl.SSLWantReadError:
            return Step.WANT_READ
        except ssl.SSLWantWriteError:
            return Step.WANT_WRITE
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            return self._fail(_describe(exc))
        try:
            self.sock.settimeout(None)
        except OSError as exc:
            return self._fail(_describe(exc))
        self.result = Step.DONE
        return Step.DONE

    def pending(self) -> int:
        """Decrypted bytes buffered in the SSL object, which a poller cannot see."""
        sock = self.sock
        if self.result is not Step.DONE or not isinstance(sock, ssl.SSLSocket):
            return 0
        try:
            return sock.pending()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        """Close the socket that holds the descriptor (for the owner; idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass

    # -- internals

    def _first_bytes(self) -> Step | None:
        """Before wrapping: wait for the first byte, spot plain HTTP; None: wrap done."""
        raw = self.sock
        if self._plain is not None:
            return self._read_plain(raw)
        try:
            first = raw.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return Step.WANT_READ
        if not first:
            return self._fail("closed before the handshake")
        if first[0] in _LETTERS:
            self._plain = bytearray()
            return self._read_plain(raw)
        # A peer that reset between accept() and now: wrap_socket would find it not
        # connected only after detaching ``raw``; find out first, while ``raw`` is ours.
        raw.getpeername()
        self.sock = self._context.wrap_socket(raw, server_side=True,
                                              do_handshake_on_connect=False)
        return None

    def _read_plain(self, raw: socket.socket) -> Step:
        """A plain-HTTP request: read its head (bounded), answer 400, fail the handshake."""
        plain = self._plain
        assert plain is not None
        while len(plain) < PLAIN_HEAD_MAX and b"\r\n\r\n" not in plain:
            try:
                data = raw.recv(PLAIN_HEAD_MAX - len(plain))
            except BlockingIOError:
                return Step.WANT_READ
            if not data:
                break
            plain += data
        try:
            # A half-closed client (EOF after its request) can still read the answer.
            raw.send(PLAIN_HTTP_RESPONSE)
        except OSError:
            pass  # the client is gone or not reading: closing is all that is left
        line = bytes(plain.split(b"\r\n", 1)[0][:80]).decode("latin-1")
        return self._fail(f'plain HTTP request on the HTTPS port ("{control_escape(line)}"), '
                          "answered 400")

    def _fail(self, reason: str) -> Step:
        self.error = reason
        self.result = Step.FAILED
        error_log.debug("TLS handshake with %s failed: %s", self.addr, reason)
        return Step.FAILED


def _describe(exc: BaseException) -> str:
    """A one-line reason for the log: OpenSSL's reason code, else the errno's text."""
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None)
        if reason:
            return f"{type(exc).__name__}: {reason}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"
