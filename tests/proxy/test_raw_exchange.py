"""The fast path's bodyless requests go upstream without h11 (UpstreamConnection.send_raw):
framing by our own parser, pooling decided by it, and the strictness it adds."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from minihttp.proxy import ProxyConfig
from tests.helpers.proxy import Raw, Upstream, proxy, proxy_url, raw_exchange

pytestmark = pytest.mark.usefixtures("proxy_kind")


@pytest.fixture
def quick() -> ProxyConfig:
    return ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)


def _session(server: object) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": proxy_url(server)}  # type: ignore[arg-type]
    return s


class _Origin:
    """A raw keep-alive origin: answers every request head on a connection with
    ``answer(n)`` (n: the request's number on that connection), counts connections."""

    def __init__(self, answer: Callable[[int], bytes]) -> None:
        self.answer = answer
        self.accepted = 0
        self.heads: list[bytes] = []
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.settimeout(0.1)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _conn(self, c: socket.socket) -> None:
        with c:
            c.settimeout(5)
            buf = b""
            for n in range(100):
                while b"\r\n\r\n" not in buf:
                    try:
                        piece = c.recv(65536)
                    except OSError:
                        return
                    if not piece:
                        return
                    buf += piece
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head)
                try:
                    c.sendall(self.answer(n))
                except OSError:
                    return

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._conn, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    @contextlib.contextmanager
    def running(self) -> Iterator[_Origin]:
        main = threading.Thread(target=self._serve, daemon=True)
        main.start()
        try:
            yield self
        finally:
            self._stop.set()
            main.join(5)
            self._srv.close()
            for t in self._threads:
                t.join(5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def test_gets_reuse_one_upstream_connection_and_mix_with_h11_exchanges(
        quick: ProxyConfig) -> None:
    """Raw (GET) and h11 (POST, a body) exchanges alternate on one pooled connection."""
    with Upstream() as up, proxy(quick) as px, _session(px) as s:
        for i in range(6):
            if i % 2:
                assert s.post(f"{up.base}/{i}", data=b"abc", timeout=5).content == b"ok:abc"
            else:
                assert s.get(f"{up.base}/{i}", timeout=5).content == b"ok:"
        assert up.accepted == 1
        assert [x.target for x in up.seen] == [f"/{i}" for i in range(6)]


def test_the_request_bytes_are_what_h11_would_send(quick: ProxyConfig) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    origin = _Origin(lambda n: answer)
    with origin.running(), proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {origin.base}/p?q=1 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n"
                           "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nhi")
    head = origin.heads[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /p?q=1 HTTP/1.1"
    assert lines[1] == f"Host: 127.0.0.1:{origin.port}".encode()
    assert b"X-A: b" in lines and not any(x.startswith(b"Connection") for x in lines)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",  # h11 takes it
    b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nhi",  # h11 takes it
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nhi",  # obs-fold
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",  # bare LF: 502 now, not a 504 later
])
def test_ambiguous_answers_are_502(quick: ProxyConfig, answer: bytes) -> None:
    origin = _Origin(lambda n: answer)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        r = s.get(f"{origin.base}/", timeout=5)
        assert r.status_code == 502 and b"hi" not in r.content


def test_bytes_past_the_body_keep_the_connection_out_of_the_pool(quick: ProxyConfig) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA"
    origin = _Origin(lambda n: answer)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        for _ in range(3):
            r = s.get(f"{origin.base}/", timeout=5)
            assert r.content == b"hi"
        assert origin.accepted == 3
        assert px.proxy_pool.idle_count() == 0


def test_chunked_and_close_delimited_bodies_relayed_whole(quick: ProxyConfig) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    origin = _Origin(lambda n: chunked)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        for _ in range(2):
            assert s.get(f"{origin.base}/", timeout=5).content == b"hello world"
        assert origin.accepted == 1  # a chunked body ends the exchange: reused
    # No framing: the body ends when the upstream closes; never pooled.
    with Upstream(lambda req: Raw(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100_000)) as up, \
            proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5)
        assert r.content == b"x" * 100_000
        assert px.proxy_pool.idle_count() == 0


def test_interim_then_final_and_head_requests(quick: ProxyConfig) -> None:
    def answer(n: int) -> bytes:
        return (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    origin = _Origin(answer)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        assert s.get(f"{origin.base}/", timeout=5).content == b"hi"
    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    origin = _Origin(lambda n: head_answer)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        for _ in range(2):
            r = s.head(f"{origin.base}/", timeout=5)
            assert r.status_code == 200 and r.headers["Content-Length"] == "1000"
        assert origin.accepted == 1  # a HEAD answer has no body: the connection is reused


# -- the remembered heads (connections._HEADS) -----------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the parser's and the strict check's runs on the raw path."""
    from minihttp.proxy import connections

    calls = {"parse": 0, "check": 0}
    parse, check = connections.parse_response_head, connections.check_response_head

    def counted_parse(*args: object, **kwargs: object) -> object:
        calls["parse"] += 1
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    def counted_check(head: bytes) -> None:
        calls["check"] += 1
        check(head)

    monkeypatch.setattr(connections, "parse_response_head", counted_parse)
    monkeypatch.setattr(connections, "check_response_head", counted_check)
    return calls


def test_a_head_seen_again_is_neither_parsed_nor_checked_again(
        quick: ProxyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    unique = str(uuid.uuid4()).encode()  # a head no other test has sent
    answer = b"HTTP/1.1 200 OK\r\nX-Run: " + unique + b"\r\nContent-Length: 2\r\n\r\nhi"
    origin = _Origin(lambda n: answer if n < 3 else answer.replace(b"hi", b"yo"))
    with origin.running(), proxy(quick) as px, _session(px) as s:
        for _ in range(3):
            r = s.get(f"{origin.base}/", timeout=5)
            assert r.content == b"hi" and r.headers["X-Run"] == unique.decode()
        assert calls == {"parse": 1, "check": 1}
        assert s.get(f"{origin.base}/", timeout=5).content == b"yo"  # the same head
        assert origin.accepted == 1


def test_refused_heads_are_refused_every_time(
        quick: ProxyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    # Our parser takes chunked in an HTTP/1.0 response; minihttp.proxy.strict refuses it.
    calls = _counting(monkeypatch)
    unique = str(uuid.uuid4()).encode()
    answer = (b"HTTP/1.0 200 OK\r\nX-Run: " + unique
              + b"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    origin = _Origin(lambda n: answer)
    with origin.running(), proxy(quick) as px, _session(px) as s:
        for _ in range(3):
            r = s.get(f"{origin.base}/", timeout=5)
            assert r.status_code == 502 and b"hi" not in r.content
        assert calls == {"parse": 3, "check": 3}


def test_a_head_remembered_for_get_is_not_taken_for_a_head_request(
        quick: ProxyConfig) -> None:
    # The same head bytes frame 2 body bytes after a GET and none after a HEAD.
    unique = str(uuid.uuid4()).encode()
    head = b"HTTP/1.1 200 OK\r\nX-Run: " + unique + b"\r\nContent-Length: 2\r\n\r\n"
    origin = _Origin(lambda n: head if origin.heads[-1].startswith(b"HEAD ") else head + b"hi")
    cfg = ProxyConfig(upstream_timeout=2, tunnel_idle_timeout=5, quiet=True)
    with origin.running(), proxy(cfg) as px:
        target, host = f"{origin.base}/", f"127.0.0.1:{origin.port}"
        out = raw_exchange(px.server_address[1], (
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            f"HEAD {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode())
    answers = out.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200", b"200", b"200"], out
    assert answers[0].endswith(b"\r\n\r\nhi") and answers[1].endswith(b"\r\n\r\n")
    assert answers[2].endswith(b"\r\n\r\nhi")
    assert origin.accepted == 1


# -- the remembered request field blocks (fast._BLOCKS) ---------------------------------------


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("forwarded_for", [True, False])
def test_a_field_block_seen_again_goes_upstream_as_the_same_bytes(
        version: str, forwarded_for: bool) -> None:
    # The second request's fields come from the remembered block: the bytes upstream must
    # be those the first one (split, classified, encoded) produced, our fields included.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    origin = _Origin(lambda n: answer)
    cfg = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True,
                      forwarded_for=forwarded_for)
    unique = str(uuid.uuid4())  # a block no other test has sent
    with origin.running(), proxy(cfg) as px:
        host = f"127.0.0.1:{origin.port}"
        request = (f"GET {origin.base}/p?q=1 {version}\r\nUser-Agent: t/{unique}\r\n"
                   f"Host: {host}\r\nProxy-Connection: keep-alive\r\nX-A:  b \r\n"
                   "Accept: */*\r\n\r\n")
        last = request.replace("Accept: */*\r\n\r\n",
                               "Accept: */*\r\nConnection: close\r\n\r\n")
        for _ in range(2):  # one connection each: HTTP/1.0 closes after each answer
            out = raw_exchange(px.server_address[1], (request + last).encode()
                               if version == "HTTP/1.1" else request.encode())
            assert out.startswith(b"HTTP/1.") and b"\r\n\r\nhi" in out
    first, second = origin.heads[0], origin.heads[1 if version == "HTTP/1.0" else 2]
    assert first == second
    lines = first.split(b"\r\n")
    assert lines[:2] == [b"GET /p?q=1 HTTP/1.1", f"Host: {host}".encode()]
    assert lines[2:5] == [f"User-Agent: t/{unique}".encode(), b"X-A: b", b"Accept: */*"]
    via = b"Via: 1.0 " if version == "HTTP/1.0" else b"Via: 1.1 "
    assert lines[5].startswith(via)
    assert (lines[6:] == [b"X-Forwarded-For: 127.0.0.1"]) is forwarded_for
