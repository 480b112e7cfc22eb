"""parse_response_head: the framing table as vectors, any split of the bytes, and h11 as the
differential oracle (every deliberate difference asserted; see the module's rules)."""

from __future__ import annotations

import h11
import pytest
from h11._connection import _body_framing, _keep_alive
from hypothesis import given, settings
from hypothesis import strategies as st

from minihttp.http11 import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    BadResponse,
    parse_response_head,
)


def parse(head: bytes, method: bytes = b"GET") -> tuple[int, int, bool]:
    """(framing, length, keep_alive) of a whole head."""
    out = parse_response_head(head, head_request=method == b"HEAD")
    assert out is not None and out[1] == len(head)
    return out[0].framing, out[0].length, out[0].keep_alive


@pytest.mark.parametrize(("head", "method", "expected"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"GET", (LENGTH, 5, True)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"HEAD", (NO_BODY, -1, True)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET", (CHUNKED, -1, True)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n", b"GET", (CHUNKED, -1, True)),
    (b"HTTP/1.1 200 OK\r\n\r\n", b"GET", (UNTIL_CLOSE, -1, False)),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"GET", (NO_BODY, -1, True)),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", b"GET", (NO_BODY, -1, True)),
    (b"HTTP/1.1 100 Continue\r\n\r\n", b"GET", (NO_BODY, -1, True)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: x, Close\r\n\r\n", b"GET",
     (LENGTH, 0, False)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", b"GET", (LENGTH, 3, False)),
    (b"HTTP/1.1 200\r\nContent-Length: 3\r\n\r\n", b"GET", (LENGTH, 3, True)),
])
def test_framing_table(head: bytes, method: bytes, expected: tuple[int, int, bool]) -> None:
    assert parse(head, method) == expected


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 304 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",  # obs-fold
    b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",  # bare LF
    b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
    b"HTTP/2.0 200 OK\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 099 OK\r\n\r\n",
    b"HTTP/1.1 200 O\rK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
])
def test_refused(head: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_response_head(head)


def test_more_bytes_needed_then_the_same_head_for_every_split() -> None:
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\nSet-Cookie: a=1\r\n"
            b"Set-Cookie: b=2\r\n\r\n")
    whole = parse_response_head(head + b"hello")
    assert whole is not None and whole[1] == len(head)
    assert whole[0].items[1] == (b"X-A", b"x-a", b"b")
    for cut in range(len(head)):
        assert parse_response_head(head[:cut]) is None
    assert parse_response_head(bytearray(head)) == whole


def test_a_head_over_the_bound_is_refused_before_its_end() -> None:
    with pytest.raises(BadResponse):
        parse_response_head(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000, max_head=65536)
    with pytest.raises(BadResponse):
        parse_response_head(b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 300 + b"\r\n")


# -- h11 as the oracle -------------------------------------------------------------------

_NAMES = [b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection",
          b"X-A", b"Set-Cookie", b"Date", b"Bad Name", b""]
_VALUES = [b"5", b"05", b"0", b"5, 5", b"5,6", b"-1", b"chunked", b"Chunked", b"gzip, chunked",
           b"chunked, gzip", b"close", b"keep-alive", b"Close, x", b"x", b" spaced  ", b"",
           b"a\tb", b"\x80\xff", b"12345678901234567890"]


@st.composite
def response_heads(draw: st.DrawFn) -> tuple[bytes, bytes]:
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0",
                                    b"HTTP/1.1 "]))
    status = draw(st.sampled_from([b"100", b"103", b"200", b"204", b"206", b"304", b"404",
                                   b"500", b"099", b"999", b"20"]))
    reason = draw(st.sampled_from([b" OK", b" ", b"", b" Not Found", b" caf\xe9", b" a\tb"]))
    fields = draw(st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES),
                                     st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n",
                                                      b"\r\n \x20fold\r\n"])),
                           max_size=5))
    method = draw(st.sampled_from([b"GET", b"HEAD"]))
    head = version + b" " + status + reason + b"\r\n"
    head += b"".join(n + b": " + v + end for n, v, end in fields) + b"\r\n"
    return head, method


def _h11(head: bytes, method: bytes) -> tuple[object, ...] | None:
    """What h11 makes of the head: (status, reason, version, fields, framing, keep) or
    None when it refuses it."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
    conn.send(h11.EndOfMessage())
    try:
        conn.receive_data(head)
        event = conn.next_event()
        if isinstance(event, h11.InformationalResponse):
            kind, args = "content-length", (0,)
        elif isinstance(event, h11.Response):
            kind, args = _body_framing(method, event)
        else:
            return None
    except h11.ProtocolError:
        return None
    framing = {"content-length": (LENGTH, args[0]) if args else (NO_BODY, -1),
               "chunked": (CHUNKED, -1), "http/1.0": (UNTIL_CLOSE, -1)}[kind]
    keep = _keep_alive(event) and kind != "http/1.0"
    return (event.status_code, event.reason, event.http_version,
            list(event.headers.raw_items()), framing, keep)


def _ours(head: bytes, method: bytes) -> tuple[object, ...] | None:
    try:
        out = parse_response_head(head, head_request=method == b"HEAD")
    except BadResponse:
        return None
    assert out is not None, head  # every generated head is whole (or refused)
    r = out[0]
    framing = (r.framing, r.length)  # (LENGTH, 0) is "no body" too: see _normal
    return (r.status_code, r.reason, r.http_version, [(n, v) for n, _, v in r.items],
            framing, r.keep_alive)


def _deliberate(head: bytes) -> str | None:
    """Why we refuse what h11 takes (the module's rules), or None."""
    lines = head.split(b"\r\n")
    if b"\n" in b"".join(lines):
        return "bare LF"
    if any(line[:1] in (b" ", b"\t") for line in lines[1:]):
        return "obs-fold"
    if not head.startswith(b"HTTP/1."):
        return "not HTTP/1.x"
    lengths = [line.split(b":", 1)[1].strip() for line in lines[1:]
               if line.lower().startswith(b"content-length:")]
    if len(lengths) > 1 or any(b"," in v for v in lengths):
        return "repeated Content-Length"
    if lengths and any(line.lower().startswith(b"transfer-encoding:") for line in lines):
        return "Content-Length with Transfer-Encoding (h11 takes it in a 1xx)"
    if any(len(v) > 18 for v in lengths):
        return "Content-Length over 18 digits"
    return None


def _normal(result: tuple[object, ...]) -> tuple[object, ...]:
    # h11 collapses an empty length to 0 the same way: (NO_BODY, -1) for "no body".
    status, reason, version, fields, framing, keep = result
    if framing == (LENGTH, 0):
        framing = (NO_BODY, -1)
    # h11 gives Transfer-Encoding's value lower-cased; we keep it as sent (the relay drops
    # the field and frames the body itself).
    fields = [(n, v.lower() if n.lower() == b"transfer-encoding" else v)
              for n, v in fields]  # type: ignore[union-attr]
    return status, reason, version, fields, framing, keep


@settings(max_examples=1500, deadline=None)
@given(response_heads())
def test_h11_agrees_except_where_we_are_stricter(case: tuple[bytes, bytes]) -> None:
    head, method = case
    theirs, ours = _h11(head, method), _ours(head, method)
    if ours is None and theirs is not None:
        assert _deliberate(head) is not None, (head, theirs)
        return
    assert (ours is None) == (theirs is None), (head, method, ours, theirs)
    if ours is not None and theirs is not None:
        assert _normal(ours) == _normal(theirs), head
