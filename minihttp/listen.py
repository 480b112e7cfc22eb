"""Listening sockets other than a TCP port: a Unix socket path, an inherited descriptor.

``--unix PATH`` (nginx in front: ``proxy_pass http://unix:PATH``), ``--fd N`` and systemd
socket activation (``LISTEN_FDS``) of every command line, as a server mix-in
(:class:`Listener`) placed before the server class.

Rules of this module:

* A stale socket file (nobody accepts on it, a server that died) is replaced; a live one is
  "address already in use"; anything else at the path is refused, never removed.
* The socket file is removed again at ``server_close`` only by the process that made it and
  only if the file is still that socket (pre-forked workers close the server too).
* Peers of a Unix socket have no address: they are reported as :data:`LOCAL_PEER`
  (127.0.0.1), so they are trusted as loopback is by ``--forwarded-allow-ips 127.0.0.1``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import stat
from typing import Any

__all__ = ["LOCAL_PEER", "Listener", "descriptor", "systemd_listen_fd"]

log = logging.getLogger("minihttp.cli")


#: What a peer without an IP address (a Unix socket's) is reported as: a process of this
#: machine, trusted as loopback is (``--forwarded-allow-ips 127.0.0.1`` covers nginx).
LOCAL_PEER = ("127.0.0.1", 0)


def descriptor(text: str) -> int:
    """argparse type of ``--fd``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid descriptor {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def systemd_listen_fd() -> int | None:
    """The first socket systemd passed (``LISTEN_PID`` is us, ``LISTEN_FDS`` >= 1), or None.

    The variables are removed (sd_listen_fds(3) does the same) so that a child process does
    not take the socket for its own.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count > 1:
        log.warning("systemd passed %d sockets: serving the first (descriptor 3)", count)
    return 3 if count >= 1 else None


class Listener:
    """Mix-in: listen on a Unix socket path, or serve an inherited listening descriptor.

    A stale socket file (nobody accepts on it) is replaced; a live one is "address already
    in use". The file is removed again by the process that made it, if it is still ours.
    Peers of a Unix socket have no address: they are reported as :data:`LOCAL_PEER`.
    """

    inherited_fd: int = -1
    socket: socket.socket
    server_address: Any
    address_family: int
    request_queue_size: int

    def server_bind(self) -> None:
        if self.inherited_fd >= 0:
            sock = socket.socket(fileno=self.inherited_fd)
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"descriptor {self.inherited_fd} is not a stream socket")
            self.socket.close()
            self.socket = sock
            self.address_family = sock.family
        else:
            path = self.server_address
            _remove_stale_socket(path)
            self.socket.bind(path)
            self._made = (os.getpid(), os.stat(path).st_ino)
        self.server_address = self.socket.getsockname()
        if self.address_family in (socket.AF_INET, socket.AF_INET6):
            host, port = self.server_address[:2]
            self.server_name, self.server_port = socket.getfqdn(host), port
        else:
            self.server_name, self.server_port = "localhost", 80

    def server_activate(self) -> None:
        self.socket.listen(self.request_queue_size)  # also fine on a listening socket

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()  # type: ignore[misc]
        return sock, addr if isinstance(addr, tuple) and addr else LOCAL_PEER

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        made = getattr(self, "_made", None)
        if made is not None and made[0] == os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(self.server_address).st_ino == made[1]:
                    os.unlink(self.server_address)


def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a Unix socket nobody accepts on; refuse anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # stale: left by a server that died
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "address already in use", path)
