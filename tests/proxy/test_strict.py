"""Strict on both sides (issue 16 item 5): ambiguous request framing never leaves the proxy,
and an upstream response with ambiguous framing is refused with 502, never relayed.

The byte vectors here are the contract of :mod:`minihttp.proxy.strict`: any upstream parser
(h11 today, a faster one tomorrow) must refuse every ``REFUSED_RESPONSES`` head and accept
every ``ACCEPTED_RESPONSES`` one, both through :func:`check_response_heads` and end to end.
"""

from __future__ import annotations

import socket
import time

import pytest

from minihttp.proxy.strict import AmbiguousResponse, check_response_heads
from tests.helpers.proxy import Raw, Upstream, proxy, raw_exchange
from tests.helpers.tcp import tcp_server

pytestmark = pytest.mark.usefixtures("proxy_kind")

#: Response heads a proxy must not relay: (bytes, a word of the reason we give).
REFUSED_RESPONSES: dict[str, tuple[bytes, str]] = {
    "cl-and-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n"
                  b"\r\n2\r\nok\r\n0\r\n\r\n", "Content-Length with Transfer-Encoding"),
    "te-and-cl": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n"
                  b"\r\n2\r\nok\r\n0\r\n\r\n", "Content-Length with Transfer-Encoding"),
    "cl-differing": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
                     "differing Content-Length"),
    "cl-list-differing": (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
                          "differing Content-Length"),
    "cl-not-digits": (b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
                      "invalid Content-Length"),
    "cl-plus-sign": (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
                     "invalid Content-Length"),
    "cl-negative": (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
                    "invalid Content-Length"),
    "cl-empty": (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", "invalid Content-Length"),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                 "obs-fold"),
    "obs-fold-tab": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 2\r\n\r\nok",
                     "obs-fold"),
    "obs-fold-in-cl": (b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 2\r\n\r\nok", "obs-fold"),
    "bare-cr": (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", "bare CR"),
    "lf-only-head": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare LF"),
    "lf-one-line": (b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\nok", "bare LF"),
    "lf-end-of-head": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", "bare LF"),
    "te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", "chunked"),
    "te-chunked-then-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok",
                             "chunked"),
    "te-chunked-twice": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "chunked"),
    "te-identity": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok", "chunked"),
    "te-in-http10": (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n", "HTTP/1.0"),
    "space-before-colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
                           "malformed field line"),
    "nul-in-value": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                     "control byte"),
    "obs-fold-after-1xx": (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                           "obs-fold"),
    "obs-fold-in-1xx": (b"HTTP/1.1 100 Continue\r\nX-A: a\r\n b\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "obs-fold"),
}

#: Response heads that are unambiguous (some unusual): relayed, with the body.
ACCEPTED_RESPONSES: dict[str, bytes] = {
    "plain": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "cl-repeated-same": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "cl-list-same": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "interim-then-final": (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "no-reason": b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
    "obs-text-value": b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\tx\r\nContent-Length: 2\r\n\r\nok",
}


#: Accepted by the check, which a stricter upstream parser may refuse too: repeated equal
#: Content-Length values (RFC 9112 section 6.3 allows either; the raw path's
#: minihttp.http11.parse_response_head refuses them).
MAY_REFUSE = frozenset({"cl-repeated-same", "cl-list-same"})


@pytest.mark.parametrize("name", sorted(REFUSED_RESPONSES))
def test_check_refuses(name: str) -> None:
    data, why = REFUSED_RESPONSES[name]
    with pytest.raises(AmbiguousResponse, match=why):
        check_response_heads(data)


@pytest.mark.parametrize("name", sorted(ACCEPTED_RESPONSES))
def test_check_accepts(name: str) -> None:
    check_response_heads(ACCEPTED_RESPONSES[name])


def _through_proxy(upstream_port: int, proxy_port: int) -> bytes:
    return raw_exchange(proxy_port, f"GET http://127.0.0.1:{upstream_port}/ HTTP/1.1\r\n"
                                    f"Host: x\r\nConnection: close\r\n\r\n".encode())


def test_ambiguous_responses_are_502_end_to_end() -> None:
    current = [b""]
    with Upstream(lambda req: Raw(current[0])) as up, proxy() as p:
        for name, (data, why) in REFUSED_RESPONSES.items():
            current[0] = data
            answer = _through_proxy(up.port, p.server_address[1])
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 502 "), (name, answer)
            assert b"Bad Gateway: upstream response has ambiguous framing" in body, \
                (name, answer)
            assert why.encode() in body, (name, answer)  # the reason, whoever parsed it
            assert b"ok" not in body, (name, answer)  # nothing of the upstream's body


def test_accepted_responses_are_relayed_end_to_end() -> None:
    current = [b""]
    with Upstream(lambda req: Raw(current[0])) as up, proxy() as p:
        for name, data in ACCEPTED_RESPONSES.items():
            current[0] = data
            answer = _through_proxy(up.port, p.server_address[1])
            if name in MAY_REFUSE and answer.startswith(b"HTTP/1.1 502 "):
                assert b"Content-Length" in answer.partition(b"\r\n\r\n")[2], (name, answer)
                continue
            assert answer.startswith(b"HTTP/1.1 200 "), (name, answer)
            assert answer.endswith(b"ok") or answer.endswith(b"2\r\nok\r\n0\r\n\r\n"), \
                (name, answer)
            assert answer.count(b"Content-Length") <= 1, (name, answer)


def test_ambiguous_head_arriving_in_pieces_is_502() -> None:
    # The check sees every byte of the head even when it comes in several reads.
    pieces = [b"HTTP/1.1 200 OK\r\nX-A:", b" a\r\n", b" folded\r\nContent-Length: 2\r\n",
              b"\r\nok"]

    def slow(conn: socket.socket) -> None:
        conn.recv(65536)
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(0.05)

    with tcp_server(slow) as port, proxy() as p:
        answer = _through_proxy(port, p.server_address[1])
        assert answer.startswith(b"HTTP/1.1 502 ") and b"obs-fold" in answer, answer


#: Requests whose framing an upstream could read differently from us: (bytes, status).
REFUSED_REQUESTS: dict[str, tuple[bytes, int]] = {
    "cl-and-te": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "obs-fold": (b"GET http://U/ HTTP/1.1\r\nHost: U\r\nX-A: a\r\n b\r\n\r\n", 400),
    "obs-fold-in-cl": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length:\r\n 3\r\n\r\n"
                       b"abc", 400),
    "bare-cr": (b"GET http://U/ HTTP/1.1\r\nHost: U\r\nX-A: a\rb\r\n\r\n", 400),
    "bare-lf": (b"GET http://U/ HTTP/1.1\nHost: U\n\n", 400),
    "cl-repeated-same": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length: 3\r\n"
                         b"Content-Length: 3\r\n\r\nabc", 400),
    "cl-repeated-differing": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length: 3\r\n"
                              b"Content-Length: 4\r\n\r\nabcd", 400),
    "cl-list": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    "cl-plus-sign": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length: +3\r\n\r\nabc",
                     400),
    "space-before-colon": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nContent-Length : 3\r\n\r\n"
                           b"abc", 400),
    "te-chunked-then-gzip": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\n"
                             b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "te-in-http10": (b"POST http://U/ HTTP/1.0\r\nHost: U\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n", 400),
    "te-gzip": (b"POST http://U/ HTTP/1.1\r\nHost: U\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
}


def test_ambiguous_requests_are_refused_and_never_forwarded() -> None:
    with Upstream() as up, proxy() as p:
        where = f"127.0.0.1:{up.port}".encode()
        for name, (data, status) in REFUSED_REQUESTS.items():
            answer = raw_exchange(p.server_address[1], data.replace(b"U", where))
            assert answer.startswith(b"HTTP/1.1 %d " % status), (name, answer)
        assert up.seen == []
        assert up.accepted == 0


def test_forwarded_framing_is_normalised() -> None:
    # What does go out has exactly one framing field, in its plain form (RFC 9112 6.3).
    with Upstream() as up, proxy() as p:
        where = f"127.0.0.1:{up.port}".encode()
        chunked = (b"POST http://U/c HTTP/1.1\r\nHost: U\r\nTransfer-Encoding: Chunked\r\n"
                   b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        length = (b"POST http://U/l HTTP/1.1\r\nHost: U\r\nContent-Length:  3 \r\n"
                  b"Connection: close\r\n\r\nabc")
        for data in (chunked, length):
            answer = raw_exchange(p.server_address[1], data.replace(b"U", where))
            assert answer.startswith(b"HTTP/1.1 200 "), answer
        by_target = {s.target: s for s in up.seen}
        sent = by_target["/c"]
        assert sent.body == b"abc"
        assert sent.get_all("Transfer-Encoding") == ["chunked"]
        assert sent.get_all("Content-Length") == []
        sent = by_target["/l"]
        assert sent.get_all("Content-Length") == ["3"]
        assert sent.get_all("Transfer-Encoding") == []
