"""The proxy's hook-less fast path means exactly what the general path means.

Without a request hook, a request's fields are classified by a table and handed to h11 as
its own field list, and plain ``http://reg-name`` targets are split without the general
parse. These tests hold the fast path to the general one (the path a subclass with a
request hook takes): the same target split, the same fields upstream, the same response
fields back, the same refusals; plus the pieces only the fast path has (the bounded name
table, hooks and ``send_header`` overrides still seeing what they saw, the pooled server).

Loopback only (127.0.0.1 port 0); every wait is bounded.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minihttp.proxy import (
    PooledProxyServer,
    ProxyConfig,
    ProxyHandler,
    ProxyRequest,
    ProxyResponse,
)
from minihttp.proxy import fast as _proxy_fast
from minihttp.proxy.config import parse_args
from minihttp.proxy.fast import _fast_target
from minihttp.proxy.route import Refuse
from tests.helpers.proxy import Raw, Reply, Seen, Upstream, proxy, raw_exchange
from tests.helpers.servers import running

QUICK = ProxyConfig(upstream_timeout=5, tunnel_idle_timeout=5, quiet=True, via_name="px")


class _General(ProxyHandler):
    """Takes the general path: a request hook that changes nothing."""

    def request_hook(self, request: ProxyRequest) -> ProxyRequest:
        return request


def _slow_target(target: str) -> tuple[str, int, str] | None:
    handler = ProxyHandler.__new__(ProxyHandler)
    handler.path, handler.command = target, "GET"
    try:
        return handler._target()
    except Refuse:
        return None


# -- the target ---------------------------------------------------------------------------

_PIECES = ["http://", "HTTP://", "https://", "h", "example.com", "a-b.c", "1.2.3.4", ":",
           ":80", ":8080", ":0", ":65535", ":65536", ":123456", "/", "/p", "?", "?q=1", "#",
           "#f", "@", "u@", "[::1]", "[", "]", "%41", "~", " ", "*"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=7))
@example(["http://", "h", ":", "/x"])
@example(["http://", "h", "#f"])
@example(["http://", "h", "?q=1", "#f"])
def test_fast_target_agrees_with_the_general_split(pieces: list[str]) -> None:
    target = "".join(pieces)
    fast = _fast_target(target)
    if fast is not None:  # what the fast path accepts, the general path accepts the same way
        assert _slow_target(target) == fast


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=7))
@example(["http://", "h", "/p", "#f"])
@example(["http://", "h", "?q=1", "/p"])
def test_split_by_destination_is_the_regex(pieces: list[str]) -> None:
    """fast._split_target (string operations and the table of destinations) answers as the
    regex (fast._split_absolute) does, the first time and from the table; the Host it gives
    is Routing._authority's."""
    target = "".join(pieces)
    expected = _proxy_fast._split_absolute(target)
    for _ in range(2):
        split = _proxy_fast._split_target(target)
        if expected is None:
            assert split is None
        else:
            assert split is not None and split[:3] == expected
            assert split[3] == ProxyHandler._authority(expected[0], expected[1])


def test_destination_table_stays_bounded() -> None:
    limit = _proxy_fast._DESTINATIONS_MAX
    for i in range(limit + 10):
        assert _fast_target(f"http://h{i}.example:81/p?{i}") == (f"h{i}.example", 81, f"/p?{i}")
        assert len(_proxy_fast._DESTINATIONS) <= limit
    for target in ("http://h:0/", "http://h:65536/x", "http://u@h/", "http://[::1]/"):
        assert _fast_target(target) is None
        assert _fast_target(target) is None  # from the table


@pytest.mark.parametrize(("target", "expected"), [
    ("http://example.com", ("example.com", 80, "/")),
    ("HTTP://example.com:8080?x=1#frag", ("example.com", 8080, "/?x=1")),
    ("http://example.com:/a#b", ("example.com", 80, "/a")),
    ("http://h:65535/p?q", ("h", 65535, "/p?q")),
])
def test_fast_target_examples(target: str, expected: tuple[str, int, str]) -> None:
    assert _fast_target(target) == expected


@pytest.mark.parametrize("target", ["http://h:0/", "http://h:65536/", "http://u@h/",
                                    "http://[::1]:8/", "https://h/", "/origin", "http://h#f"])
def test_fast_target_leaves_the_rest_to_the_general_path(target: str) -> None:
    assert _fast_target(target) is None


# -- fields, both ways ----------------------------------------------------------------------

_REQUEST = (
    "GET {base}/f?x=1 HTTP/1.1\r\n"
    "Host: wrong.example\r\n"
    "X-Custom: a\r\n"
    "x-lower: b\r\n"
    "Connection: keep-alive, X-Drop\r\n"
    "X-Drop: 1\r\n"
    "Via: 1.0 other\r\n"
    "X-Forwarded-For: 10.0.0.1\r\n"
    "X-Forwarded-For:\r\n"
    "Keep-Alive: timeout=5\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "TE: trailers\r\n"
    "Upgrade: h2c\r\n"
    "Accept: */*\r\n"
    "Content-Length: 3\r\n"
    "\r\n"
    "abc"
)


def _upstream_reply(req: Seen) -> Reply:
    return Reply(200, [("Content-Type", "text/plain"), ("Connection", "close, X-Secret"),
                       ("X-Secret", "s"), ("Keep-Alive", "timeout=1"), ("X-Kept", "k"),
                       ("Content-Length", "2")], b"ok")


@pytest.mark.parametrize("handler", [ProxyHandler, _General])
def test_request_and_response_fields(handler: type[ProxyHandler]) -> None:
    with Upstream(_upstream_reply) as up, proxy(QUICK, handler) as px:
        out = raw_exchange(px.server_address[1], _REQUEST.format(base=up.base).encode(),
                           until_close=False)  # the request keeps the connection alive
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok"
    lines = head.decode("latin-1").split("\r\n")[1:]
    names = [line.split(":", 1)[0].lower() for line in lines]
    assert "x-secret" not in names and "keep-alive" not in names  # listed / hop-by-hop
    assert "X-Kept: k" in lines and "Via: 1.1 px" in lines and "Content-Length: 2" in lines
    seen = up.seen[0]
    assert seen.target == "/f?x=1" and seen.body == b"abc"
    assert seen.headers[0] == ("Host", f"127.0.0.1:{up.port}")  # RFC 9112 section 3.2.2
    assert seen.get("X-Custom") == "a" and ("x-lower", "b") in seen.headers  # case as sent
    for gone in ("X-Drop", "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade"):
        assert seen.get(gone) is None, gone
    assert seen.get_all("Via") == ["1.0 other", "1.1 px"]
    assert seen.get_all("X-Forwarded-For") == ["10.0.0.1, 127.0.0.1"]
    assert seen.get("Content-Length") == "3"


def test_fast_and_general_paths_send_the_same_fields() -> None:
    seen: list[list[tuple[str, str]]] = []
    for handler in (ProxyHandler, _General):
        with Upstream(_upstream_reply) as up, proxy(QUICK, handler) as px:
            raw_exchange(px.server_address[1], _REQUEST.format(base=up.base).encode(),
                         until_close=False)
        seen.append([(n, v.replace(str(up.port), "PORT")) for n, v in up.seen[0].headers])
    assert seen[0] == seen[1]


@pytest.mark.parametrize("handler", [ProxyHandler, _General])
@pytest.mark.parametrize(("fields", "status"), [
    ("Connection: Cookie\r\n", 400),
    ("Via: 1.1 px\r\n", 508),
    ("Via: 1.1 a, 1.0 PX\r\n", 508),
])
def test_refusals_are_the_same(handler: type[ProxyHandler], fields: str, status: int) -> None:
    with Upstream() as up, proxy(QUICK, handler) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/r HTTP/1.1\r\nHost: x\r\n{fields}"
                           "Connection: close\r\n\r\n".encode())
    assert out.startswith(f"HTTP/1.1 {status} ".encode())
    assert up.seen == []


def test_chunked_and_odd_length_framing_on_the_fast_path() -> None:
    with Upstream() as up, proxy(QUICK) as px:
        port = px.server_address[1]
        chunked = raw_exchange(port, f"POST {up.base}/c HTTP/1.1\r\nHost: x\r\n"
                               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                               "2\r\nab\r\n1\r\nc\r\n0\r\n\r\n".encode())
        padded = raw_exchange(port, f"POST {up.base}/l HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 003\r\nConnection: close\r\n\r\nxyz".encode())
    assert chunked.endswith(b"ok:abc") and padded.endswith(b"ok:xyz")
    assert up.seen[0].get("Transfer-Encoding") == "chunked"
    assert up.seen[1].body == b"xyz" and up.seen[1].get("Content-Length") in ("003", "3")


def test_name_table_stays_bounded() -> None:
    limit = _proxy_fast._NAMES_MAX
    with Upstream() as up, proxy(QUICK) as px:
        for batch in range(limit // 40 + 2):
            fields = "".join(f"X-N{batch}-{i}: v{i}\r\n" for i in range(50))
            out = raw_exchange(px.server_address[1],
                               f"GET {up.base}/n HTTP/1.1\r\nHost: x\r\n{fields}"
                               "Connection: close\r\n\r\n".encode())
            assert out.startswith(b"HTTP/1.1 200 ")
            assert len(_proxy_fast._NAMES) <= limit
    last = up.seen[-1]
    assert last.get(f"X-N{limit // 40 + 1}-49") == "v49"


# -- subclasses see what they saw before ------------------------------------------------------


class _ResponseHookOnly(ProxyHandler):
    requests: list[ProxyRequest] = []

    def response_hook(self, request: ProxyRequest,
                      response: ProxyResponse) -> ProxyResponse:
        type(self).requests.append(request)
        response.set_header("X-Hooked", response.get_header("X-Kept") or "none")
        return response


def test_response_hook_gets_the_request_on_the_fast_path() -> None:
    _ResponseHookOnly.requests = []
    with Upstream(_upstream_reply) as up, proxy(QUICK, _ResponseHookOnly) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/h HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"
                           "Connection: close\r\n\r\n".encode())
    assert b"\r\nX-Hooked: k\r\n" in out
    request = _ResponseHookOnly.requests[0]
    assert request.method == "GET" and request.url == f"{up.base}/h"
    assert request.get_header("X-A") == "1" and request.get_header("Host") is None
    assert request.get_header("Via") == "1.1 px"
    assert request.get_header("X-Forwarded-For") == "127.0.0.1"


class _SeesHeaders(ProxyHandler):
    sent: list[tuple[str, str]] = []

    def send_header(self, keyword: str, value: str) -> None:
        type(self).sent.append((keyword, value))
        super().send_header(keyword, value)


def test_send_header_override_sees_every_relayed_field() -> None:
    _SeesHeaders.sent = []
    with Upstream(_upstream_reply) as up, proxy(QUICK, _SeesHeaders) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/s HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 ") and b"\r\nX-Kept: k\r\n" in out
    assert ("X-Kept", "k") in _SeesHeaders.sent and ("Via", "1.1 px") in _SeesHeaders.sent


# -- the body relay and the pooled server ------------------------------------------------------


def test_body_cut_after_head_still_closes_the_client() -> None:
    def app(req: Seen) -> Raw:
        return Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    with Upstream(app) as up, proxy(QUICK) as px:
        out = raw_exchange(px.server_address[1],
                           f"GET {up.base}/cut HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"abc")  # then closed


def test_proxy_on_the_pooled_server_keeps_alive() -> None:
    with Upstream() as up:
        server = PooledProxyServer(("127.0.0.1", 0), config=QUICK)
        with running(server):
            one = f"GET {up.base}/p HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            last = f"GET {up.base}/q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            out = raw_exchange(server.server_address[1], one * 3 + last)
    assert out.count(b"HTTP/1.1 200 ") == 4
    assert [s.target for s in up.seen] == ["/p", "/p", "/p", "/q"]
    assert up.accepted == 1  # one pooled upstream connection for all four


def test_server_flags() -> None:
    """The pooled server is the default; ``--threads`` picks a thread per client; the old
    ``--pool`` opt-in is gone (it was the default already)."""
    assert parse_args(["0"]).pool
    assert not parse_args(["--threads", "0"]).pool
    with pytest.raises(SystemExit):
        parse_args(["--pool", "0"])
