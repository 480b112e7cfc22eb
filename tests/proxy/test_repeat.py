"""A repeated request head is forwarded without parsing it (minihttp.proxy.repeat), and
nobody can tell: the upstream gets the same bytes, the client the same answer, the log the
same line, as when every head is parsed (a class with one method of its own never takes
the shortcut: that is the reference here).

Loopback only (127.0.0.1 port 0); every read is bounded.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from minihttp.proxy import PooledProxyServer, ProxyConfig, ProxyHandler, ProxyServer
from minihttp.proxy import repeat as _repeat
from minihttp.server import BaseHTTPRequestHandler
from tests.helpers.proxy import Reply, Upstream
from tests.helpers.servers import running

QUICK = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True, via_name="px")


class Counting(ProxyHandler):
    """minihttp's handler, counting its parses (a class attribute, not a method: it stays
    repeatable)."""

    parses: list[str] = []


class Parsing(ProxyHandler):
    """Parses every head: a method of its own (the reference)."""

    def do_GET(self) -> None:
        super().do_GET()

    do_HEAD = do_GET


@pytest.fixture(autouse=True)
def _count_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    original = BaseHTTPRequestHandler.parse_request
    Counting.parses = []

    def parse_request(self: Any) -> bool:
        if type(self) is Counting:
            Counting.parses.append(self.requestline)
        return original(self)

    monkeypatch.setattr(BaseHTTPRequestHandler, "parse_request", parse_request)


def _read_response(sock: socket.socket, buf: bytearray, head: bool = False) -> bytes:
    """One Content-Length response (no body after a HEAD) from ``buf`` + the socket."""
    for _ in range(1000):
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        piece = sock.recv(65536)
        assert piece, f"closed early: {bytes(buf)!r}"
        buf += piece
    head_only = head
    fields = bytes(buf[:end + 4])
    length = 0
    for line in fields.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if head_only:
        length = 0
    for _ in range(1000):
        if len(buf) >= end + 4 + length:
            break
        piece = sock.recv(65536)
        assert piece, "closed mid-body"
        buf += piece
    whole = bytes(buf[:end + 4 + length])
    del buf[:end + 4 + length]
    return whole


def _exchange(port: int, heads: list[bytes]) -> list[bytes]:
    """Send each head on one keep-alive connection, one after the other; the responses."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        buf = bytearray()
        for head in heads:
            s.sendall(head)
            out.append(_read_response(s, buf, head.startswith(b"HEAD ")))
    return out


def _scrub(response: bytes) -> bytes:
    """A response without its Date line (the second may change between two runs)."""
    return b"\r\n".join(line for line in response.split(b"\r\n")
                        if not line.lower().startswith(b"date:"))


def _run(server_cls: type, handler: type, heads: list[bytes],
         config: ProxyConfig = QUICK) -> tuple[list[bytes], list[tuple[Any, ...]]]:
    """The responses (no Date) and what the upstream saw (its port written UP)."""
    with Upstream(lambda req: Reply(200, [("Content-Length", "3")], b"abc")) as up:
        server = server_cls(("127.0.0.1", 0), handler, config=config)
        with running(server):
            wire = [h.replace(b"{up}", str(up.port).encode()) for h in heads]
            responses = _exchange(server.server_address[1], wire)
        port = str(up.port)
        seen = [(s.method, s.target, [(n, v.replace(port, "UP")) for n, v in s.headers])
                for s in up.seen]
        return [_scrub(r) for r in responses], seen


def _get(path: str = "/", extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return (method + b" http://127.0.0.1:{up}" + path.encode() + b" HTTP/1.1\r\n"
            b"Host: 127.0.0.1:{up}\r\nUser-Agent: t\r\n" + extra + b"\r\n")


SERVERS = pytest.mark.parametrize("server_cls", [ProxyServer, PooledProxyServer],
                                  ids=["threads", "pooled"])


@SERVERS
def test_a_repeated_head_is_not_parsed_again_and_nothing_differs(server_cls: type) -> None:
    heads = [_get(), _get(), _get(), _get(), _get("/b"), _get("/b"), _get("/b"), _get(),
             _get(method=b"HEAD"), _get(method=b"HEAD"), _get(method=b"HEAD"), _get()]
    got, seen = _run(server_cls, Counting, heads)
    want, want_seen = _run(server_cls, Parsing, heads)
    assert got == want
    assert seen == want_seen
    assert len(seen) == len(heads)
    # kept from the second of a run of equal heads: parsed are the first two of each run
    # (GET /, GET /b, HEAD) and the lone ones (GET / twice): 2 + 2 + 1 + 2 + 1
    assert len(Counting.parses) == 8, Counting.parses
    assert all(r.startswith(b"HTTP/1.1 200 ") for r in got)


def test_a_new_head_is_kept_from_its_second_time_after_another_was_kept() -> None:
    """The head before is noted for every forwarded head, also one whose field block the
    fast path knows (fast._forward_known, the usual case on a kept-alive connection)."""
    heads = [_get(), _get(), _get("/b"), _get("/b"), _get("/b"), _get("/b")]
    got, seen = _run(PooledProxyServer, Counting, heads)
    assert got == _run(PooledProxyServer, Parsing, heads)[0]
    assert len(seen) == len(heads)
    assert len(Counting.parses) == 4, Counting.parses  # / twice, /b twice


@pytest.mark.parametrize("extra", [
    b"Connection: keep-alive\r\n",  # a field the rules act on
    b"Via: 1.1 other\r\n",
    b"X-Forwarded-For: 10.0.0.1\r\n",
    b"Content-Length: 0\r\n",
])
def test_heads_with_fields_the_rules_act_on_are_parsed_every_time(extra: bytes) -> None:
    heads = [_get(extra=extra)] * 3
    got, _ = _run(PooledProxyServer, Counting, heads)
    assert len(Counting.parses) == 3
    want, _ = _run(PooledProxyServer, Parsing, heads)
    assert got == want


def test_a_closing_request_is_not_remembered() -> None:
    got, _ = _run(PooledProxyServer, Counting, [_get(), _get(extra=b"Connection: close\r\n")])
    assert len(Counting.parses) == 2
    assert b"connection: close" in got[1].lower()


def test_not_with_proxy_authentication() -> None:
    import base64

    token = base64.b64encode(b"u:p")
    cfg = ProxyConfig(upstream_timeout=5, quiet=True, via_name="px", auth=("u", "p"))
    heads = [_get(extra=b"Proxy-Authorization: Basic " + token + b"\r\n")] * 3
    got, _ = _run(PooledProxyServer, Counting, heads, cfg)
    assert all(r.startswith(b"HTTP/1.1 200 ") for r in got)
    assert len(Counting.parses) == 3


def test_a_class_with_a_method_of_its_own_is_not_repeatable() -> None:
    assert _repeat.repeatable(ProxyHandler)
    assert _repeat.repeatable(Counting)
    assert not _repeat.repeatable(Parsing)

    class Logging(ProxyHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    assert _repeat.repeatable(Logging)

    class Formatted(ProxyHandler):
        access_format = "%h"

    assert not _repeat.repeatable(Formatted)


def test_an_upstream_gone_after_a_hit_gets_the_same_answer_as_parsed() -> None:
    """The second (repeated) head finds the origin gone: 502, as the parse path says."""
    def answers(handler: type) -> list[bytes]:
        up = Upstream(lambda req: Reply(200, [("Content-Length", "1")], b"x"))
        with up:
            server = PooledProxyServer(("127.0.0.1", 0), handler, config=QUICK)
            with running(server):
                head = _get().replace(b"{up}", str(up.port).encode())
                with socket.create_connection(("127.0.0.1", server.server_address[1]),
                                              timeout=5) as s:
                    buf = bytearray()
                    s.sendall(head)
                    first = _read_response(s, buf)
                    s.sendall(head)  # the second time in a row: kept
                    _read_response(s, buf)
                    up.__exit__(None, None, None)  # the origin goes away
                    server.proxy_pool.close()
                    s.sendall(head)
                    second = _read_response(s, buf)
        return [_scrub(first), _scrub(second)]

    got = answers(Counting)
    want = answers(Parsing)
    assert got[0].startswith(b"HTTP/1.1 200 ")
    assert got[1].split(b"\r\n", 1)[0] == want[1].split(b"\r\n", 1)[0]
    assert got[1].split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 502 ")
    assert len(Counting.parses) == 2


# -- the response side: a head relayed again (Exchange._relay_again) ----------------------

DATE = ("Date", "Sat, 05 Dec 2026 08:00:00 GMT")


class Fields(ProxyHandler):
    """Sees each relayed field in send_header: never relays a kept head (the reference)."""

    def send_header(self, keyword: str, value: Any) -> None:
        super().send_header(keyword, value)


def _relayed(handler: type, heads: list[bytes], fields: list[tuple[str, str]],
             monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], int]:
    """The responses to ``heads`` (one connection) from an upstream answering ``fields``,
    and how many heads were relayed again."""
    from minihttp.proxy.upstream import Exchange

    again: list[int] = []
    original = Exchange._relay_again

    def counting(self: Any, *args: Any) -> None:
        again.append(1)
        original(self, *args)

    monkeypatch.setattr(Exchange, "_relay_again", counting)
    with Upstream(lambda req: Reply(200, [*fields, ("Content-Length", "3")], b"abc")) as up:
        server = PooledProxyServer(("127.0.0.1", 0), handler, config=QUICK)
        with running(server):
            wire = [h.replace(b"{up}", str(up.port).encode()) for h in heads]
            responses = _exchange(server.server_address[1], wire)
    return responses, len(again)


def test_the_same_upstream_head_is_relayed_as_the_same_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    heads = [_get(), _get("/b"), _get(), _get(method=b"HEAD"), _get()]
    fields = [DATE, ("Content-Type", "text/plain"), ("X-A", "1")]
    got, again = _relayed(ProxyHandler, heads, fields, monkeypatch)
    want, none = _relayed(Fields, heads, fields, monkeypatch)
    assert got == want  # byte for byte, the Date the upstream's own
    assert none == 0
    assert again == 3  # every GET after the first (the HEAD is built as usual)
    assert got[0].startswith(b"HTTP/1.1 200 ") and got[0].endswith(b"abc")


def test_a_head_naming_fields_in_connection_is_relayed_again_without_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # nginx's "Connection: keep-alive" is the common case: what is dropped for Connection's
    # options is decided by the head's bytes alone, so the relayed head is the same bytes.
    heads = [_get()] * 3
    fields = [DATE, ("Connection", "keep-alive, X-A"), ("Keep-Alive", "timeout=5"),
              ("X-A", "1"), ("X-B", "2")]
    got, again = _relayed(ProxyHandler, heads, fields, monkeypatch)
    want, _ = _relayed(Fields, heads, fields, monkeypatch)
    assert got == want
    assert again == 2
    for response in got:
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert b"\r\nx-b: 2" in head
        assert b"x-a:" not in head and b"keep-alive" not in head and b"connection:" not in head


def test_heads_without_a_date_are_built_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = [("Content-Type", "text/plain")]  # no Date: ours is added, a new one each second
    got, again = _relayed(ProxyHandler, [_get()] * 3, fields, monkeypatch)
    assert again == 0
    want, _ = _relayed(Fields, [_get()] * 3, fields, monkeypatch)
    assert [_scrub(r) for r in got] == [_scrub(r) for r in want]


def test_a_closing_request_gets_its_connection_close(monkeypatch: pytest.MonkeyPatch) -> None:
    heads = [_get(), _get(), _get(extra=b"Connection: close\r\n")]
    got, again = _relayed(ProxyHandler, heads, [DATE], monkeypatch)
    assert again == 1
    assert b"\r\nconnection: close\r\n" in got[2].lower()
    assert b"connection:" not in got[1].lower()
