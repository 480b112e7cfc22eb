"""Byte relay for CONNECT tunnels (RFC 9110 section 9.3.6).

After a 2xx answer to CONNECT the proxy stops speaking HTTP on that connection and becomes
a blind relay: "the tunnel is closed when a tunnel intermediary detects that either side has
closed its connection" -- with the refinement that a half-close (FIN) on one side is passed
on as a half-close (``shutdown(SHUT_WR)``) to the other, so protocols that signal the end of
their input by closing the write side (TLS close_notify then FIN, simple request/response
over raw TCP) keep working.

Rules of this module:

* One thread, one selector, two sockets. A tunnel holds no other resources.
* The idle timeout covers the tunnel as a whole: it expires only when *neither* direction
  has carried a byte for ``idle_timeout`` seconds (a long download keeps it alive).
* Sends are blocking with the same timeout, so a peer that stops reading cannot pin the
  thread forever.
* The relay never closes the sockets: the caller owns them and closes them in a ``finally``.

:func:`relay` takes the calling thread for the tunnel's life. On a server that can hand a
connection over (``PooledHTTPServer.detach``) and carries a
:class:`~minihttp.proxy.hub.TunnelHub` (``tunnel_hub``, as the proxy servers do), the
handler gives the tunnel to the hub instead (:func:`detach_client`, :func:`hand_over`): it
is relayed on the hub's one thread, with the same semantics. Either way the tunnel is
logged once, when it ends, with the bytes each way and its duration (:func:`log_tunnel`),
not as ``200 0`` when it starts.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

__all__ = ["detach_client", "hand_over", "log_tunnel", "relay", "relay_here"]

_BUFSIZE = 64 * 1024


def relay(
    client: socket.socket,
    upstream: socket.socket,
    *,
    idle_timeout: float | None,
    initial: bytes = b"",
) -> tuple[int, int]:
    """Copy bytes both ways until both sides have closed, an error, or the idle timeout.

    ``initial`` holds bytes the client sent after its CONNECT head that were already read
    into the server's buffer; they go upstream first. Returns ``(bytes_up, bytes_down)``.
    """
    peer = {client: upstream, upstream: client}
    counts = {client: 0, upstream: 0}
    for s in (client, upstream):
        s.settimeout(idle_timeout)
    if initial:
        upstream.sendall(initial)
        counts[client] += len(initial)
    open_readers = {client, upstream}
    deadline = None if idle_timeout is None else time.monotonic() + idle_timeout
    with selectors.DefaultSelector() as sel:
        for s in open_readers:
            sel.register(s, selectors.EVENT_READ)
        while open_readers:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                break  # idle on both sides: close the tunnel
            ready = sel.select(wait)
            for key, _ in ready:
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                dst = peer[src]
                try:
                    data = src.recv(_BUFSIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return counts[client], counts[upstream]  # reset: tear down both ways
                if not data:
                    # Half-close: pass the FIN on and keep relaying the other direction.
                    sel.unregister(src)
                    open_readers.discard(src)
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        return counts[client], counts[upstream]
                    continue
                try:
                    dst.sendall(data)
                except OSError:
                    return counts[client], counts[upstream]
                counts[src] += len(data)
                if idle_timeout is not None:
                    deadline = time.monotonic() + idle_timeout
    return counts[client], counts[upstream]


def detach_client(handler: Any) -> socket.socket | None:
    """The client's socket, taken over from the server for a tunnel relayed by its hub
    (the server then closes its own descriptor without shutting the connection); None when
    the server has no hub or cannot hand the connection over (TLS, a thread-per-connection
    server): the tunnel is then relayed on the handler's thread (:func:`relay_here`)."""
    server = handler.server
    detach = getattr(server, "detach", None)
    if detach is None or getattr(server, "tunnel_hub", None) is None:
        return None
    client: socket.socket | None = detach(handler.connection)
    return client


def hand_over(handler: Any, client: socket.socket, upstream: socket.socket, *,
              idle_timeout: float | None, initial: bytes = b"") -> bool:
    """Give the tunnel to the server's hub (it owns both sockets from now on and logs the
    tunnel when it ends). False when the hub is closed: both sockets are then closed here
    (the server is stopping)."""
    def done(up: int, down: int, seconds: float) -> None:
        log_tunnel(handler, up, down, seconds)

    if handler.server.tunnel_hub.add(client, upstream, idle_timeout=idle_timeout,
                                     initial=initial, on_done=done):
        return True
    for s in (client, upstream):
        try:
            s.close()
        except OSError:
            pass
    return False


def relay_here(handler: Any, upstream: socket.socket, *, idle_timeout: float | None,
               initial: bytes = b"") -> None:
    """:func:`relay` on the handler's thread, then the tunnel's log line."""
    started = time.monotonic()
    up = down = 0
    try:
        up, down = relay(handler.connection, upstream, idle_timeout=idle_timeout,
                         initial=initial)
    finally:
        log_tunnel(handler, up, down, time.monotonic() - started)


def log_tunnel(handler: Any, up: int, down: int, seconds: float) -> None:
    """The tunnel's access line (issue 15 item 8): the Common Log Format's size is what
    went to the client; the bytes each way and the duration follow."""
    handler.log_message('"%s" %s %s tunnel up=%d down=%d %.3fs', handler.requestline,
                        "200", str(down), up, down, seconds)
