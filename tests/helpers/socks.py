"""A raw-socket SOCKS5 client for tests (RFC 1928, RFC 1929), every read bounded in time."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass


@dataclass
class Reply:
    """A SOCKS5 reply: its code and the bound address it carries."""

    code: int
    host: str
    port: int


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes (fewer when the peer closes first); the socket's timeout applies."""
    data = b""
    for _ in range(10_000):
        if len(data) >= n:
            break
        piece = sock.recv(n - len(data))
        if not piece:
            break
        data += piece
    return data


def greet(sock: socket.socket, methods: bytes = b"\x00") -> int:
    """Send the greeting; the method the server chose (-1 when it closed instead)."""
    sock.sendall(b"\x05" + bytes((len(methods),)) + methods)
    answer = recv_exact(sock, 2)
    return answer[1] if len(answer) == 2 else -1


def authenticate(sock: socket.socket, user: str, password: str) -> int:
    """RFC 1929 username/password; the status (0 success), -1 when the server closed."""
    u, p = user.encode(), password.encode()
    sock.sendall(b"\x01" + bytes((len(u),)) + u + bytes((len(p),)) + p)
    answer = recv_exact(sock, 2)
    return answer[1] if len(answer) == 2 else -1


def address(host: str) -> bytes:
    """ATYP and DST.ADDR for ``host``: IPv4, IPv6 or a domain name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode()
        return b"\x03" + bytes((len(name),)) + name
    return (b"\x01" if ip.version == 4 else b"\x04") + ip.packed


def request(sock: socket.socket, host: str, port: int, command: int = 1) -> Reply | None:
    """Send a request (CONNECT by default); the reply, or None when the server closed."""
    sock.sendall(bytes((5, command, 0)) + address(host) + struct.pack("!H", port))
    head = recv_exact(sock, 4)
    if len(head) < 4:
        return None
    size = {1: 4, 4: 16}.get(head[3])
    if size is None:
        raise AssertionError(f"bad address type in reply: {head!r}")
    bound = recv_exact(sock, size + 2)
    ip = ipaddress.ip_address(bound[:size])
    return Reply(head[1], str(ip), struct.unpack("!H", bound[size:])[0])


def open_tunnel(port: int, host: str, dst_port: int, *, auth: tuple[str, str] | None = None,
                timeout: float = 5.0) -> tuple[socket.socket, Reply | None]:
    """Connect to the SOCKS server on 127.0.0.1:``port`` and ask for ``host:dst_port``.

    Returns the socket (the caller closes it) and the reply (None when refused earlier).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        method = greet(sock, b"\x02" if auth else b"\x00")
        if method == 2 and auth is not None:
            if authenticate(sock, *auth) != 0:
                return sock, None
        elif method != 0:
            return sock, None
        return sock, request(sock, host, dst_port)
    except BaseException:
        sock.close()
        raise
