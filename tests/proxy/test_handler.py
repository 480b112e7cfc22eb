"""End-to-end tests of the forward proxy: real clients -> ProxyServer -> loopback upstreams."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import h11
import pytest
import requests

from minihttp.proxy import ProxyConfig, ProxyHandler, ProxyRequest, ProxyResponse
from tests.helpers.proxy import (
    Raw,
    Reply,
    Seen,
    Upstream,
    proxy,
    proxy_url,
    raw_exchange,
    read_response,
)
from tests.helpers.servers import open_fds

#: Every test here runs on each proxy server (threads, pooled event loop).
pytestmark = pytest.mark.usefixtures("proxy_kind")

MB = 1024 * 1024


def _session(server: object) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never pick up a proxy from the environment
    url = proxy_url(server)  # type: ignore[arg-type]
    s.proxies = {"http": url, "https": url}
    return s


def _pattern(n: int) -> bytes:
    block = bytes(range(256)) * 4096  # 1 MiB of a non-repeating-per-KB pattern
    return (block * (n // len(block) + 1))[:n]


def _sha_app(req: Seen) -> Reply:
    digest = hashlib.sha256(req.body).hexdigest()
    return Reply(200, [("Content-Length", str(len(digest)))], digest.encode())


@pytest.fixture
def quick() -> ProxyConfig:
    return ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True)


# -- forwarding --------------------------------------------------------------------------


def test_get_forwarded_with_host_rewritten_and_origin_form_upstream(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/a/b?x=1", timeout=5, headers={"Host": "wrong.example"})
        assert r.status_code == 200
        assert r.content == b"ok:"
        seen = up.seen[0]
        assert seen.target == "/a/b?x=1"  # absolute-form -> origin-form upstream
        assert seen.get("Host") == f"127.0.0.1:{up.port}"  # RFC 9112 3.2.2: replaced
        assert seen.http_version == "1.1"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_large_request_body_streamed_with_content_length(quick: ProxyConfig, method: str) -> None:
    body = _pattern(5 * MB + 17)
    with Upstream(_sha_app) as up, proxy(quick) as px, _session(px) as s:
        r = s.request(method, f"{up.base}/upload", data=body, timeout=20)
        assert r.status_code == 200
        assert r.text == hashlib.sha256(body).hexdigest()
        assert up.seen[0].get("Content-Length") == str(len(body))
        assert up.seen[0].get("Transfer-Encoding") is None


def test_chunked_request_body_reframed_chunked(quick: ProxyConfig) -> None:
    pieces = [_pattern(300_000), b"x", b"", _pattern(1 * MB)]
    with Upstream(_sha_app) as up, proxy(quick) as px, _session(px) as s:
        r = s.post(f"{up.base}/c", data=iter(pieces), timeout=20)  # generator -> chunked
        assert r.status_code == 200
        assert r.text == hashlib.sha256(b"".join(pieces)).hexdigest()
        assert up.seen[0].get("Transfer-Encoding") == "chunked"
        assert up.seen[0].get("Content-Length") is None


def test_large_chunked_response_streamed(quick: ProxyConfig) -> None:
    data = _pattern(6 * MB)

    def app(req: Seen) -> Reply:
        return Reply(200, [("Content-Type", "application/octet-stream")],
                     (data[i:i + 100_000] for i in range(0, len(data), 100_000)))

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/big", timeout=20, stream=True)
        got = b"".join(r.iter_content(65536))
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_large_content_length_response_keeps_length(quick: ProxyConfig) -> None:
    data = _pattern(4 * MB)

    def app(req: Seen) -> Reply:
        return Reply(200, [("Content-Length", str(len(data)))],
                     (data[i:i + 65536] for i in range(0, len(data), 65536)))

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/big", timeout=20)
        assert r.headers["Content-Length"] == str(len(data))
        assert r.content == data


def test_head_204_304_carry_no_body(quick: ProxyConfig) -> None:
    def app(req: Seen) -> Reply:
        if req.target == "/204":
            return Reply(204, [])
        if req.target == "/304":
            return Reply(304, [("ETag", '"v1"')])
        return Reply(200, [("Content-Length", "1000")], b"y" * 1000)

    with Upstream(app) as up, proxy(quick) as px:
        port = px.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            # Three requests on one client connection: a body leaking from any of them would
            # desync the next; h11 reads each response as a strict client.
            for method, path, status in (("HEAD", "/", 200), ("GET", "/204", 204),
                                         ("GET", "/304", 304), ("GET", "/", 200)):
                sock.sendall(f"{method} {up.base}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                conn = h11.Connection(h11.CLIENT)
                conn.send(h11.Request(method=method, target=path, headers=[("Host", "x")]))
                conn.send(h11.EndOfMessage())
                head, body = None, b""
                for _ in range(1000):
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        conn.receive_data(sock.recv(65536))
                    elif isinstance(ev, h11.Response):
                        head = ev
                    elif isinstance(ev, h11.Data):
                        body += ev.data
                    else:
                        break
                assert head is not None and head.status_code == status
                if method == "HEAD":
                    assert dict(head.headers)[b"content-length"] == b"1000"
                    assert body == b""
                elif status == 200:
                    assert body == b"y" * 1000
                else:
                    assert body == b""


def test_keepalive_upstream_connections_reused(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick) as px, _session(px) as s:
        for i in range(10):
            assert s.post(f"{up.base}/{i}", data=b"abc", timeout=5).content == b"ok:abc"
        assert up.accepted == 1
        assert len(up.seen) == 10


def test_upstream_connection_close_not_pooled(quick: ProxyConfig) -> None:
    def app(req: Seen) -> Reply:
        return Reply(200, [("Connection", "close"), ("Content-Length", "2")], b"hi")

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        for _ in range(3):
            r = s.get(f"{up.base}/", timeout=5)
            assert r.content == b"hi"
            assert "close" not in r.headers.get("Connection", "")  # hop-by-hop: not relayed
        assert up.accepted == 3
        assert px.proxy_pool.idle_count() == 0


def test_stale_pooled_connection_retried_once_for_idempotent(quick: ProxyConfig) -> None:
    # The upstream answers then closes *without* saying so: the pooled connection is stale.
    def app(req: Seen) -> Raw:
        return Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", then_wait=0.0)

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        assert s.get(f"{up.base}/1", timeout=5).content == b"hi"
        time.sleep(0.05)
        # The pooled connection got a FIN while idle: the liveness poll must discard it.
        assert s.get(f"{up.base}/2", timeout=5).content == b"hi"
        assert up.accepted == 2


def test_stale_connection_retry_path(quick: ProxyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooled connection that dies before answering is retried on a fresh one (GET only)."""
    from minihttp.proxy.connections import ConnectionPool

    monkeypatch.setattr(ConnectionPool, "_looks_alive", staticmethod(lambda conn: True))

    def app(req: Seen) -> Raw:
        return Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        assert s.get(f"{up.base}/1", timeout=5).content == b"hi"
        time.sleep(0.1)
        assert s.get(f"{up.base}/2", timeout=5).content == b"hi"  # retried
        assert up.accepted == 2
        time.sleep(0.1)
        r = s.post(f"{up.base}/3", data=b"z", timeout=5)  # POST: not retried -> 502
        assert r.status_code == 502
        assert up.accepted == 2


# -- hop-by-hop, Via, X-Forwarded-For ------------------------------------------------------


def test_hop_by_hop_stripped_both_ways(quick: ProxyConfig) -> None:
    def app(req: Seen) -> Reply:
        return Reply(200, [("Connection", "X-Secret-Hop"), ("X-Secret-Hop", "1"),
                           ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic"),
                           ("Upgrade", "h2c"), ("X-End", "e"), ("Content-Length", "0")], b"")

    with Upstream(app) as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5, headers={
            "Connection": "X-Drop-Me", "X-Drop-Me": "1", "Proxy-Connection": "x",
            "Keep-Alive": "300", "TE": "trailers", "Upgrade": "websocket",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==", "X-Keep": "k"})
        seen = up.seen[0]
        for name in ("X-Drop-Me", "Proxy-Connection", "Keep-Alive", "TE", "Upgrade",
                     "Proxy-Authorization"):
            assert seen.get(name) is None, name
        assert seen.get("Connection") is None
        assert seen.get("X-Keep") == "k"
        for name in ("X-Secret-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"):
            assert name not in r.headers, name
        assert r.headers["X-End"] == "e"


@pytest.mark.parametrize("listed", ["Host", "content-length", "Authorization", "close, Cookie"])
def test_connection_listing_end_to_end_field_is_400(quick: ProxyConfig, listed: str) -> None:
    with Upstream() as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5, headers={"Connection": listed})
        assert r.status_code == 400
        assert r.headers["Content-Type"].startswith("text/plain")
        assert up.seen == []


def test_via_and_x_forwarded_for(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick.replace(via_name="px1")) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5, headers={"X-Forwarded-For": "10.1.1.1",
                                                      "Via": "1.0 other"})
        seen = up.seen[0]
        assert seen.get_all("Via") == ["1.0 other", "1.1 px1"]
        assert seen.get("X-Forwarded-For") == "10.1.1.1, 127.0.0.1"
        assert r.headers["Via"] == "1.1 px1"


def test_no_forwarded_for(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick.replace(forwarded_for=False)) as px, _session(px) as s:
        s.get(f"{up.base}/", timeout=5)
        assert up.seen[0].get("X-Forwarded-For") is None


def test_loop_via_our_pseudonym_refused(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick.replace(via_name="px-loop")) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5, headers={"Via": "1.1 a, 1.1 px-loop"})
        assert r.status_code == 508
        assert up.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loop_target_is_proxy_refused(quick: ProxyConfig, host: str) -> None:
    with proxy(quick) as px, _session(px) as s:
        r = s.get(f"http://{host}:{px.server_address[1]}/x", timeout=5)
        assert r.status_code == 508


def test_origin_form_request_to_proxy_is_400(quick: ProxyConfig) -> None:
    with proxy(quick) as px:
        out = raw_exchange(px.server_address[1], b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 ")
        assert b"absolute-form" in out


@pytest.mark.parametrize("target", [
    b"https://127.0.0.1:1/", b"ftp://127.0.0.1/", b"http://user:pw@127.0.0.1:1/",
    b"http://127.0.0.1:99999/", b"http://[::1/", b"http://a b/",
])
def test_bad_absolute_targets_are_400(quick: ProxyConfig, target: bytes) -> None:
    with proxy(quick) as px:
        out = raw_exchange(px.server_address[1], b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 "), out[:100]


# -- upstream failures ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def test_upstream_down_is_502(quick: ProxyConfig) -> None:
    with proxy(quick) as px, _session(px) as s:
        r = s.get(f"http://127.0.0.1:{_free_port()}/", timeout=5)
        assert r.status_code == 502
        assert r.headers["Content-Type"].startswith("text/plain")
        assert len(r.content) < 200


def test_dns_failure_is_502(quick: ProxyConfig) -> None:
    # .invalid never resolves (RFC 6761); the resolver answers without network traffic.
    with proxy(quick) as px, _session(px) as s:
        r = s.get("http://no-such-host.invalid/", timeout=10)
        assert r.status_code == 502


def test_upstream_slow_is_504(quick: ProxyConfig) -> None:
    def app(req: Seen) -> Raw:
        return Raw(b"", then_wait=3.0)

    with Upstream(app) as up, proxy(quick.replace(upstream_timeout=0.3)) as px, \
            _session(px) as s:
        r = s.get(f"{up.base}/slow", timeout=10)
        assert r.status_code == 504


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
    b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"garbage\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
])
def test_broken_upstream_framing_is_502_and_not_relayed(quick: ProxyConfig, raw: bytes) -> None:
    with Upstream(lambda req: Raw(raw)) as up, proxy(quick) as px, _session(px) as s:
        r = s.get(f"{up.base}/", timeout=5)
        assert r.status_code == 502
        assert b"hello" not in r.content and b"xxxx" not in r.content


def test_broken_body_after_head_closes_client(quick: ProxyConfig) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    with Upstream(lambda req: Raw(raw)) as up, proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 200 ")
        assert not out.endswith(b"0\r\n\r\n")  # never made to look complete


def test_short_content_length_body_closes_client() -> None:
    """The upstream closes 91 bytes short of its Content-Length: the client gets the head and
    the bytes that came, then the proxy closes the connection at once (a truncated body
    must never look complete, nor leave the client waiting). The upstream timeout is far
    longer than the client's, so a proxy that waits instead of closing fails the test."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this"
    slow = ProxyConfig(upstream_timeout=60, tunnel_idle_timeout=5, quiet=True)
    with Upstream(lambda req: Raw(raw)) as up, proxy(slow) as px, \
            socket.create_connection(("127.0.0.1", px.server_address[1]), timeout=5) as c:
        c.sendall(f"GET {up.base}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())  # keep-alive
        data = b""
        for _ in range(1000):
            try:
                piece = c.recv(65536)
            except TimeoutError:
                pytest.fail(f"the proxy left the client waiting after {data!r}")
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nContent-Length: 100" in head, data
    assert body == b"only-this"


# -- hooks ------------------------------------------------------------------------------------


class _Rewriting(ProxyHandler):
    def request_hook(self, request: ProxyRequest) -> ProxyRequest | ProxyResponse | None:
        if request.url.endswith("/blocked"):
            return ProxyResponse(451, "Unavailable", [("X-Why", "hook")], b"nope")
        request.set_header("X-Added", "1")
        request.remove_header("X-Remove")
        return request

    def response_hook(self, request: ProxyRequest, response: ProxyResponse) -> ProxyResponse:
        response.set_header("X-Seen-By", "hook")
        response.status = 299 if response.status == 200 else response.status
        return response


def test_hooks_change_request_and_response_and_short_circuit(quick: ProxyConfig) -> None:
    with Upstream() as up, proxy(quick, _Rewriting) as px, _session(px) as s:
        r = s.get(f"{up.base}/x", timeout=5, headers={"X-Remove": "1"})
        assert r.status_code == 299
        assert r.headers["X-Seen-By"] == "hook"
        assert r.content == b"ok:"
        assert up.seen[0].get("X-Added") == "1"
        assert up.seen[0].get("X-Remove") is None
        r = s.get(f"{up.base}/blocked", timeout=5)
        assert (r.status_code, r.content, r.headers["X-Why"]) == (451, b"nope", "hook")
        assert len(up.seen) == 1


# -- hygiene ------------------------------------------------------------------------------------


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_no_fd_or_thread_leak(quick: ProxyConfig) -> None:
    before_fds = open_fds()
    before_threads = _threads()
    with Upstream(_sha_app) as up, proxy(quick) as px:
        for _ in range(3):
            with _session(px) as s:
                s.post(f"{up.base}/", data=b"x" * 1000, timeout=5)
                s.get(f"http://127.0.0.1:{_free_port()}/", timeout=5)
        raw_exchange(px.server_address[1], b"GET /origin HTTP/1.1\r\nHost: a\r\n\r\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if open_fds() <= before_fds and not (_threads() - before_threads):
            break
        time.sleep(0.05)
    assert open_fds() <= before_fds
    assert not [t for t in _threads() - before_threads if t.is_alive()]


# -- interim responses, Expect, HTTP/1.0 clients, Max-Forwards ----------------------------------


def test_interim_1xx_from_upstream_not_relayed(quick: ProxyConfig) -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
    with Upstream(lambda req: Raw(raw)) as up, proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                           .encode())
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert out.endswith(b"\r\n\r\nbody")
        assert b" 100 " not in out and b" 103 " not in out


def test_expect_100_continue_from_client(quick: ProxyConfig) -> None:
    with Upstream(_sha_app) as up, proxy(quick) as px, \
            socket.create_connection(("127.0.0.1", px.server_address[1]), timeout=5) as sock:
        sock.sendall(f"PUT {up.base}/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")  # our server, when we read the body
        sock.sendall(b"hello")
        head, body = read_response(sock, "PUT")
        assert head.status_code == 200
        assert body == hashlib.sha256(b"hello").hexdigest().encode()
        assert up.seen[0].get("Expect") is None  # handled here, not forwarded


def test_http10_client_gets_close_delimited_body(quick: ProxyConfig) -> None:
    def app(req: Seen) -> Reply:
        return Reply(200, [], (b"part%d;" % i for i in range(5)))  # chunked upstream

    with Upstream(app) as up, proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/ HTTP/1.0\r\n\r\n".encode())
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"chunked" not in head.lower()
        assert body == b"part0;part1;part2;part3;part4;"
        assert up.seen[0].get_all("Via") == [f"1.0 {quick.via_name}"]


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS"])
def test_max_forwards_zero_answered_by_proxy(quick: ProxyConfig, method: str) -> None:
    with Upstream() as up, proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"{method} {up.base}/ HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n"
                           "Cookie: secret\r\nConnection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 200 ")
        assert b"secret" not in out
        assert up.seen == []
        out = raw_exchange(px.server_address[1],
                           f"{method} {up.base}/ HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n"
                           "Connection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 200 ")
        assert up.seen[0].get("Max-Forwards") == "2"  # RFC 9110 7.6.2: decremented


def test_client_bad_chunked_body_gets_400_and_upstream_not_reused(quick: ProxyConfig) -> None:
    with Upstream(_sha_app) as up, proxy(quick) as px:
        out = raw_exchange(px.server_address[1],
                           f"POST {up.base}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           "\r\n\r\n5\r\nhello\r\nzz\r\n".encode())
        assert out.startswith(b"HTTP/1.1 400 ")
        assert up.seen == []  # the upstream never saw a complete (wrong) request
        assert px.proxy_pool.idle_count() == 0
        with _session(px) as s:
            assert s.post(f"{up.base}/", data=b"ok", timeout=5).status_code == 200
        assert up.accepted == 2


def test_extension_methods_are_forwarded_and_fail_as_any_method(quick: ProxyConfig) -> None:
    """A method with no ``do_`` of its own (PURGE, M-SEARCH) is forwarded as it is, body and
    all; one that cannot be a ``do_`` name (lower case) is 501 with Allow; a body that
    fails mid-read is the client's 400, as for POST."""
    with Upstream(_sha_app) as up, proxy(quick) as px:
        port = px.server_address[1]
        out = raw_exchange(port, f"PURGE {up.base}/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 "Content-Length: 2\r\n\r\nab".encode())
        assert out.startswith(b"HTTP/1.1 200 "), out[:100]
        out = raw_exchange(port, f"M-SEARCH {up.base}/m HTTP/1.1\r\nHost: x\r\n"
                                 "Connection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 200 "), out[:100]
        assert [(s.method, s.target, s.body) for s in up.seen] == [
            ("PURGE", "/p", b"ab"), ("M-SEARCH", "/m", b"")]
        out = raw_exchange(port, f"purge {up.base}/ HTTP/1.1\r\nHost: x\r\n"
                                 "Connection: close\r\n\r\n".encode())
        assert out.startswith(b"HTTP/1.1 501 "), out[:100]
        assert b"\r\nAllow: " in out
        out = raw_exchange(port, f"PURGE {up.base}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:"
                                 " chunked\r\n\r\n5\r\nhello\r\nzz\r\n".encode())
        assert out.startswith(b"HTTP/1.1 400 "), out[:100]
        assert len(up.seen) == 2


def test_client_gone_mid_body_does_not_hang_or_leak(quick: ProxyConfig) -> None:
    with Upstream(_sha_app) as up, proxy(quick) as px:
        with socket.create_connection(("127.0.0.1", px.server_address[1]), timeout=5) as sock:
            sock.sendall(f"PUT {up.base}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                         .encode() + b"x" * 1000)
            time.sleep(0.1)
        with _session(px) as s:
            assert s.put(f"{up.base}/", data=b"y", timeout=5).status_code == 200
        assert up.seen[-1].body == b"y"
        assert all(seen.body != b"x" * 1000 for seen in up.seen)


@pytest.mark.parametrize(("status_line", "expected"), [
    (b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK\r\n"),
    (b"HTTP/1.1 200 Fine Thanks", b"HTTP/1.1 200 Fine Thanks\r\n"),  # own reason, kept
    (b"HTTP/1.1 299 Custom Thing", b"HTTP/1.1 299 Custom Thing\r\n"),  # unknown status
    (b"HTTP/1.1 404 ", b"HTTP/1.1 404 "),  # empty reason: ours (or none), never invented
    (b"HTTP/1.1 200 Caf\xe9", b"HTTP/1.1 200 Caf\xe9\r\n"),  # obs-text, byte for byte
])
def test_status_line_reason_is_relayed(quick: ProxyConfig, status_line: bytes,
                                       expected: bytes) -> None:
    """The reason phrase is the upstream's (RFC 9112 section 4: it carries no meaning, but
    a proxy does not rewrite it); every request goes through the same (bounded) table."""
    raw = status_line + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    with Upstream(lambda req: Raw(raw)) as up, proxy(quick) as px:
        for _ in range(2):  # the second answer comes from the table the first filled
            out = raw_exchange(px.server_address[1],
                               f"GET {up.base}/ HTTP/1.1\r\nHost: x\r\nConnection: close"
                               "\r\n\r\n".encode())
            assert out.startswith(expected), out[:80]
            assert out.endswith(b"ok")
