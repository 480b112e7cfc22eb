"""CONNECT tunnels relayed on one event loop: no thread per tunnel (issue 16 item 2).

:func:`minihttp.proxy.tunnel.relay` relays one tunnel on the calling thread, blocking for
the tunnel's whole life. :class:`TunnelHub` relays every tunnel handed to it on one thread
of its own with non-blocking sockets and one epoll (``selectors``): an idle tunnel costs two
registered descriptors and a small object, so ten thousand open tunnels need no more
threads than one. The relay's semantics are :func:`~minihttp.proxy.tunnel.relay`'s (RFC 9110
section 9.3.6): bytes both ways, a half-close (FIN) passed on as ``shutdown(SHUT_WR)`` once
what was read before it is written, an error on either side (reset) closes both, and the
idle timeout covers the tunnel as a whole.

Rules of this module:

* The hub owns the sockets it is given: it closes both when the tunnel ends (the caller
  must not use them any more) and then calls the tunnel's ``on_done(up, down, seconds)``
  once, on the hub's thread (an exception there is logged, never fatal to the hub).
* Back-pressure: bytes read from one side that the other cannot take yet wait in that
  direction's buffer, and the side they came from is not read again until it is written
  out (at most one read, 64 KiB, per direction in memory).
* Interest per socket = read (its own direction is open and has nothing waiting) | write
  (the other direction has bytes waiting for it); a socket with neither is unregistered.
* Only the hub's thread touches tunnels and the selector; :meth:`TunnelHub.add` and
  :meth:`TunnelHub.close` (any thread) pass through a queue and the wake-up socket.
* Idle tunnels are found by a sweep at most every :data:`SWEEP` seconds (a tunnel's idle
  timeout is therefore honoured to within that).
"""

from __future__ import annotations

import collections
import selectors
import socket
import threading
import time
from collections.abc import Callable

from minihttp.logs import error_log
from minihttp.socketserver._waits import leave_stop_signals_to_the_main_thread
from minihttp.socketserver._wakeup import Waker

__all__ = ["SWEEP", "TunnelHub"]

_BUFSIZE = 64 * 1024
#: Seconds between two looks for idle tunnels.
SWEEP = 1.0
_R, _W = selectors.EVENT_READ, selectors.EVENT_WRITE

OnDone = Callable[[int, int, float], object]


class _Way:
    """One direction of a tunnel: bytes read from ``src`` are written to ``dst``."""

    __slots__ = ("count", "dst", "eof", "pending", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.pending = b""  # read from src, not yet written to dst
        self.eof = False  # src sent its FIN
        self.shut = False  # the FIN was passed on (dst's write side shut)
        self.count = 0  # bytes written to dst


class _Tunnel:
    __slots__ = ("client", "down", "idle_timeout", "last", "on_done", "started", "up",
                 "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket,
                 idle_timeout: float | None, on_done: OnDone | None) -> None:
        self.client, self.upstream = client, upstream
        self.up = _Way(client, upstream)
        self.down = _Way(upstream, client)
        self.idle_timeout = idle_timeout
        self.on_done = on_done
        self.started = self.last = time.monotonic()


class TunnelHub:
    """Relays CONNECT tunnels on one thread of its own (started with the first tunnel)."""

    def __init__(self, name: str = "minihttp-tunnels") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._incoming: collections.deque[_Tunnel] = collections.deque()
        self._thread: threading.Thread | None = None
        self._waker: Waker | None = None
        self._closing = False
        self._tunnels: set[_Tunnel] = set()
        #: socket -> (tunnel, its outgoing way (read side), its incoming way (write side))
        self._by_sock: dict[socket.socket, tuple[_Tunnel, _Way, _Way]] = {}
        self._sel: selectors.BaseSelector | None = None

    def __len__(self) -> int:
        """Tunnels open (or handed over and about to be)."""
        with self._lock:
            return len(self._tunnels) + len(self._incoming)

    def add(self, client: socket.socket, upstream: socket.socket, *,
            idle_timeout: float | None, initial: bytes = b"",
            on_done: OnDone | None = None) -> bool:
        """Relay ``client`` <-> ``upstream`` from now on; ``initial`` (client bytes read
        past the CONNECT head) goes upstream first. False when the hub is closed (the
        sockets are then the caller's still). Any thread."""
        tunnel = _Tunnel(client, upstream, idle_timeout, on_done)
        tunnel.up.pending = bytes(initial)
        with self._lock:
            if self._closing:
                return False
            self._incoming.append(tunnel)
            if self._thread is None:
                self._waker = Waker()
                self._sel = selectors.DefaultSelector()
                self._sel.register(self._waker.fileno(), _R)
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()
            waker = self._waker
        assert waker is not None
        waker.wake()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """End every tunnel (each gets its ``on_done``) and the hub's thread. Any thread;
        later :meth:`add` calls return False."""
        with self._lock:
            self._closing = True
            thread, waker = self._thread, self._waker
        if thread is None or waker is None:
            return
        waker.wake()
        if thread is not threading.current_thread():
            thread.join(timeout)

    # -- the hub's thread ------------------------------------------------------------------

    def _run(self) -> None:
        leave_stop_signals_to_the_main_thread()
        sel = self._sel
        waker = self._waker
        assert sel is not None and waker is not None
        wake_fd = waker.fileno()
        next_sweep = time.monotonic() + SWEEP
        try:
            while True:
                self._take_incoming()
                if self._closing:
                    break
                for key, events in sel.select(max(0.0, next_sweep - time.monotonic())):
                    if key.fd == wake_fd:
                        waker.drain()
                        continue
                    entry = self._by_sock.get(key.fileobj)  # type: ignore[call-overload]
                    if entry is not None:
                        self._on_event(entry, key.fileobj, events)  # type: ignore[arg-type]
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + SWEEP
                    self._sweep(now)
        except Exception:  # a bug here must not leave tunnels open forever
            error_log.exception("tunnel hub failed; closing its tunnels")
        finally:
            with self._lock:
                self._closing = True
                left = list(self._incoming)
                self._incoming.clear()
            for tunnel in [*self._tunnels, *left]:
                self._end(tunnel)
            sel.close()
            waker.close()

    def _take_incoming(self) -> None:
        while True:
            with self._lock:
                if not self._incoming:
                    return
                tunnel = self._incoming.popleft()
            try:
                for s in (tunnel.client, tunnel.upstream):
                    s.setblocking(False)
            except OSError:
                self._end(tunnel)
                continue
            self._tunnels.add(tunnel)
            self._by_sock[tunnel.client] = (tunnel, tunnel.up, tunnel.down)
            self._by_sock[tunnel.upstream] = (tunnel, tunnel.down, tunnel.up)
            if tunnel.up.pending:
                self._write(tunnel, tunnel.up)
            if tunnel in self._tunnels:
                self._watch(tunnel)

    def _on_event(self, entry: tuple[_Tunnel, _Way, _Way], sock: socket.socket,
                  events: int) -> None:
        tunnel, out, inbound = entry
        if events & _W and inbound.pending and not self._write(tunnel, inbound):
            return
        if events & _R and not out.eof and not out.pending:
            try:
                data = sock.recv(_BUFSIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._end(tunnel)  # reset: tear down both ways
                return
            if data is not None:
                tunnel.last = time.monotonic()
                if data:
                    out.pending = data
                    if not self._write(tunnel, out):
                        return
                else:
                    out.eof = True
                    if not self._pass_fin(tunnel, out):
                        return
        if tunnel in self._tunnels:
            self._watch(tunnel)

    def _write(self, tunnel: _Tunnel, way: _Way) -> bool:
        """Write what ``way`` holds (as much as ``dst`` takes); False when the tunnel ended."""
        try:
            sent = way.dst.send(way.pending)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._end(tunnel)
            return False
        way.count += sent
        way.pending = way.pending[sent:]
        tunnel.last = time.monotonic()
        if not way.pending and way.eof:
            return self._pass_fin(tunnel, way)
        return True

    def _pass_fin(self, tunnel: _Tunnel, way: _Way) -> bool:
        """Pass ``way``'s FIN on once its bytes are out; end the tunnel when both ways are
        shut. False when the tunnel ended."""
        if way.pending or way.shut:
            return True
        way.shut = True
        try:
            way.dst.shutdown(socket.SHUT_WR)
        except OSError:
            self._end(tunnel)
            return False
        if tunnel.up.shut and tunnel.down.shut:
            self._end(tunnel)
            return False
        return True

    def _watch(self, tunnel: _Tunnel) -> None:
        sel = self._sel
        assert sel is not None
        for sock, out, inbound in ((tunnel.client, tunnel.up, tunnel.down),
                                   (tunnel.upstream, tunnel.down, tunnel.up)):
            mask = (0 if out.eof or out.pending else _R) | (_W if inbound.pending else 0)
            try:
                key = sel.get_key(sock)
            except KeyError:
                key = None
            try:
                if key is None:
                    if mask:
                        sel.register(sock, mask)
                elif not mask:
                    sel.unregister(sock)
                elif key.events != mask:
                    sel.modify(sock, mask)
            except (OSError, ValueError):
                self._end(tunnel)
                return

    def _sweep(self, now: float) -> None:
        for tunnel in list(self._tunnels):
            timeout = tunnel.idle_timeout
            if timeout is not None and now - tunnel.last >= timeout:
                self._end(tunnel)

    def _end(self, tunnel: _Tunnel) -> None:
        """Close both sockets (once) and report the tunnel's counts."""
        if tunnel not in self._tunnels and (tunnel.client.fileno() < 0):
            return
        self._tunnels.discard(tunnel)
        sel = self._sel
        for sock in (tunnel.client, tunnel.upstream):
            self._by_sock.pop(sock, None)
            if sel is not None:
                try:
                    sel.unregister(sock)
                except (KeyError, ValueError, OSError):
                    pass
            try:
                sock.close()
            except OSError:
                pass
        on_done = tunnel.on_done
        tunnel.on_done = None
        if on_done is not None:
            try:
                on_done(tunnel.up.count, tunnel.down.count, time.monotonic() - tunnel.started)
            except Exception:
                error_log.exception("tunnel on_done callback failed")
