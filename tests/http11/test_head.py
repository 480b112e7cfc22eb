"""Raw-byte vectors for the request side of minihttp.http11 (RFC 9112).

Each row of ``VECTORS`` is (id, raw bytes, expected, RFC rule). ``expected`` is an int
status (the request must be rejected with it, and the connection closed) or a dict of the
parsed fields that must come out. Every row is replayed whole, one byte at a time, and in
seeded random splits, and all replays must give the same outcome (find_head_end called as
bytes accumulate must agree with the whole-buffer parse).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minihttp.http11 as http11
from minihttp.config import DEFAULT_LIMITS, Limits
from minihttp.errors import HTTPError
from minihttp.http11 import find_head_end, parse_head
from tests.helpers.replay import Outcome, bytewise, random_sizes, replay, whole

H = b"Host: example.com\r\n"
CH = b"Transfer-Encoding: chunked\r\n"


def get(extra: bytes = b"", line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\n" + H + extra + b"\r\n"


def post(extra: bytes, body: bytes = b"") -> bytes:
    return b"POST /p HTTP/1.1\r\n" + H + extra + b"\r\n" + body


OK = {"method": "GET", "target": "/", "version": "HTTP/1.1", "keep_alive": True}

VECTORS: list[tuple[str, bytes, Any, str]] = [
    # --- request line (RFC 9112 section 3) -----------------------------------------------
    ("simple", get(), OK, "3"),
    ("leading-crlf", b"\r\n\r\n" + get(), OK, "2.2 skip empty lines"),
    ("leading-lf", b"\n" + get(), 400, "2.2 bare LF rejected"),
    ("lower-method", get(line=b"get / HTTP/1.1"), {"method": "get"}, "9110 9.1 case-sensitive token"),
    ("ext-method", get(line=b"M-SEARCH * HTTP/1.1"), 400, "3.2.4 * only for OPTIONS"),
    ("options-star", get(line=b"OPTIONS * HTTP/1.1"), {"target": "*"}, "3.2.4"),
    ("get-star", get(line=b"GET * HTTP/1.1"), 400, "3.2.4"),
    ("absolute-form", get(line=b"GET http://example.com/a?b HTTP/1.1"),
     {"target": "http://example.com/a?b"}, "3.2.2"),
    ("absolute-empty-host", get(line=b"GET http:///a HTTP/1.1"), 400, "9110 4.2.1"),
    ("authority-get", get(line=b"GET example.com:80 HTTP/1.1"), 400, "3.2.3 CONNECT only"),
    ("connect", get(line=b"CONNECT example.com:443 HTTP/1.1"),
     {"method": "CONNECT", "target": "example.com:443"}, "3.2.3"),
    ("connect-ipv6", get(line=b"CONNECT [::1]:443 HTTP/1.1"), {"target": "[::1]:443"}, "3.2.3"),
    ("connect-origin", get(line=b"CONNECT / HTTP/1.1"), 400, "3.2.3"),
    ("connect-noport", get(line=b"CONNECT example.com HTTP/1.1"), 400, "9110 9.3.6"),
    ("relative-target", get(line=b"GET a/b HTTP/1.1"), 400, "3.2"),
    ("double-space", get(line=b"GET  / HTTP/1.1"), 400, "3 single SP"),
    ("tab-sep", get(line=b"GET\t/ HTTP/1.1"), 400, "3 single SP"),
    ("trailing-space", get(line=b"GET / HTTP/1.1 "), 400, "3"),
    ("leading-space", get(line=b" GET / HTTP/1.1"), 400, "3"),
    ("space-in-target", get(line=b"GET /a b HTTP/1.1"), 400, "3.2"),
    ("ctl-in-target", get(line=b"GET /a\x01 HTTP/1.1"), 400, "3.2"),
    ("del-in-target", get(line=b"GET /a\x7f HTTP/1.1"), 400, "3.2"),
    ("nonascii-target", get(line=b"GET /\xc3\xa9 HTTP/1.1"), 400, "3.2"),
    ("bad-method-char", get(line=b"G(T / HTTP/1.1"), 400, "9110 5.6.2 tchar"),
    ("empty-method", get(line=b" / HTTP/1.1"), 400, "3"),
    ("lower-http", get(line=b"GET / http/1.1"), 400, "2.3 case-sensitive"),
    ("http10", b"GET / HTTP/1.0\r\n\r\n", {"version": "HTTP/1.0", "version_info": (1, 0),
                                          "keep_alive": False}, "2.3"),
    ("http12", get(line=b"GET / HTTP/1.2"), {"version": "HTTP/1.2", "version_info": (1, 2),
                                             "keep_alive": True}, "9110 6.2 minor"),
    ("http2", get(line=b"GET / HTTP/2.0"), 505, "9110 15.6.6"),
    ("http09-explicit", get(line=b"GET / HTTP/0.9"), 505, "9110 15.6.6"),
    ("http09", b"GET /\r\n\r\n", 400, "HTTP/0.9 unsupported"),
    ("version-2digit", get(line=b"GET / HTTP/1.10"), 400, "2.3 DIGIT.DIGIT"),
    ("version-missing-minor", get(line=b"GET / HTTP/1"), 400, "2.3"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "9110 15.6.6"),
    ("line-too-long", get(line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"), 414, "3 limit"),
    ("line-too-long-unterminated", b"GET /" + b"a" * 9000, 414, "3 limit"),
    # --- line endings (RFC 9112 section 2.2) --------------------------------------------
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400, "2.2 bare LF rejected"),
    ("bare-lf-field", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400, "2.2"),
    ("bare-cr-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "2.2 bare CR"),
    ("bare-cr-value", get(b"X: a\rb\r\n"), 400, "2.2 bare CR"),
    ("bare-cr-end", get(b"X: a\r\r\n"), 400, "2.2 bare CR"),
    ("bare-lf-before-long-line", b"GET /\n" + b"a" * 9000 + b"\r\n\r\n", 400,
     "earliest error wins"),
    # --- fields (RFC 9112 section 5) ----------------------------------------------------
    ("fields", get(b"X-A:  1 \t\r\nx-a: 2\r\nEmpty:\r\n"),
     {"headers": [("Host", "example.com"), ("X-A", "1"), ("x-a", "2"), ("Empty", "")]}, "5"),
    ("obs-text", get(b"X: caf\xe9\r\n"), {"headers": [("Host", "example.com"), ("X", "caf\xe9")]},
     "5.5 obs-text as latin-1"),
    ("tab-in-value", get(b"X: a\tb\r\n"), {"headers": [("Host", "example.com"), ("X", "a\tb")]},
     "5.5"),
    ("space-before-colon", get(b"X : y\r\n"), 400, "5.1"),
    ("tab-before-colon", get(b"X\t: y\r\n"), 400, "5.1"),
    ("no-colon", get(b"X y\r\n"), 400, "5"),
    ("empty-name", get(b": y\r\n"), 400, "5"),
    ("bad-name", get(b"X(y): z\r\n"), 400, "9110 5.1 token"),
    ("obs-fold", get(b"X: a\r\n b\r\n"), 400, "5.2"),
    ("obs-fold-tab", get(b"X: a\r\n\tb\r\n"), 400, "5.2"),
    ("ws-after-start-line", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "2.2"),
    ("nul-in-value", get(b"X: a\x00b\r\n"), 400, "9110 5.5"),
    ("bel-in-value", get(b"X: a\x07b\r\n"), 400, "9110 5.5"),
    ("esc-in-value", get(b"X: a\x1bb\r\n"), 400, "9110 5.5"),
    ("del-in-value", get(b"X: a\x7fb\r\n"), 400, "9110 5.5"),
    ("nonascii-name", get(b"X\xe9: y\r\n"), 400, "9110 5.1"),
    ("max-fields", get(b"".join(b"X%d: y\r\n" % i for i in range(99))), {"method": "GET"},
     "limit: 100 fields"),
    ("too-many-fields", get(b"".join(b"X%d: y\r\n" % i for i in range(100))), 431, "limit"),
    ("head-too-large", get(b"X: " + b"a" * 70000 + b"\r\n"), 431, "limit"),
    # --- Host (RFC 9112 section 3.2) -------------------------------------------------------
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400, "3.2"),
    ("two-hosts", get(H), 400, "3.2"),
    ("host-case", b"GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", {"method": "GET"}, "9110 5.1"),
    ("empty-host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", {"method": "GET"}, "3.2"),
    ("host-port", b"GET / HTTP/1.1\r\nHost: a.b:8080\r\n\r\n", {"method": "GET"}, "9110 7.2"),
    ("host-ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", {"method": "GET"}, "9110 7.2"),
    ("host-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "9110 7.2"),
    ("host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "9110 7.2"),
    ("host-badport", b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "9110 7.2"),
    ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n", {"version": "HTTP/1.0"}, "3.2 (1.1 only)"),
    ("http10-two-hosts", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "3.2"),
    # --- Content-Length (RFC 9110 section 8.6, RFC 9112 section 6.3) ------------------------
    ("cl", post(b"Content-Length: 5\r\n", b"hello"), {"content_length": 5, "body": b"hello"},
     "6.3 rule 6"),
    ("cl-zero", post(b"Content-Length: 0\r\n"), {"content_length": 0, "body": b""}, "6.3"),
    ("cl-leading-zeros", post(b"Content-Length: 005\r\n", b"hello"), {"content_length": 5},
     "9110 8.6 1*DIGIT"),
    ("cl-pipelined", post(b"Content-Length: 2\r\n", b"hiGET"), {"body": b"hi", "unused": b"GET"},
     "6.3"),
    ("cl-ows", post(b"Content-Length:  5 \r\n", b"hello"), {"content_length": 5}, "5 OWS"),
    ("cl-plus", post(b"Content-Length: +5\r\n", b"hello"), 400, "9110 8.6"),
    ("cl-minus", post(b"Content-Length: -5\r\n", b"hello"), 400, "9110 8.6"),
    ("cl-hex", post(b"Content-Length: 0x5\r\n", b"hello"), 400, "9110 8.6"),
    ("cl-inner-space", post(b"Content-Length: 1 2\r\n", b"hello"), 400, "9110 8.6"),
    ("cl-empty", post(b"Content-Length:\r\n", b""), 400, "9110 8.6"),
    ("cl-list", post(b"Content-Length: 5, 5\r\n", b"hello"), 400, "strict: no lists"),
    ("cl-dup-equal", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400,
     "strict: no duplicates"),
    ("cl-dup-differ", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), 400,
     "6.3 rule 5"),
    ("cl-too-long-number", post(b"Content-Length: " + b"9" * 19 + b"\r\n"), 400, "bounded"),
    ("cl-over-max-body", post(b"Content-Length: %d\r\n" % (2**30 + 1)), 413, "limit"),
    ("cl-http10", b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", {"body": b"hi"}, "6.3"),
    # --- Transfer-Encoding (RFC 9112 sections 6.1, 6.3, 7) ----------------------------------
    ("te-chunked", post(CH, b"5\r\nhello\r\n0\r\n\r\n"), {"chunked": True, "body": b"hello",
                                                       "content_length": None}, "7.1"),
    ("te-case", post(b"Transfer-Encoding: ChUnKeD\r\n", b"0\r\n\r\n"), {"chunked": True}, "7"),
    ("te-ows", post(b"Transfer-Encoding:  chunked \r\n", b"0\r\n\r\n"), {"chunked": True}, "5"),
    ("te-gzip", post(b"Transfer-Encoding: gzip\r\n"), 501, "6.1 unknown coding"),
    ("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n"), 501, "6.1"),
    ("te-gzip-chunked-2fields", post(b"Transfer-Encoding: gzip\r\n" + CH), 501, "6.1"),
    ("te-chunked-gzip", post(b"Transfer-Encoding: chunked, gzip\r\n"), 400, "6.3 rule 4"),
    ("te-chunked-twice", post(b"Transfer-Encoding: chunked, chunked\r\n"), 400, "7"),
    ("te-chunked-2fields", post(CH + CH), 400, "7"),
    ("te-empty", post(b"Transfer-Encoding:\r\n"), 400, "6.1 malformed"),
    ("te-empty-member", post(b"Transfer-Encoding: ,chunked\r\n"), 400, "6.1 malformed"),
    ("te-param", post(b"Transfer-Encoding: chunked;q=1\r\n"), 400, "6.1 malformed"),
    ("te-unknown", post(b"Transfer-Encoding: foo\r\n"), 501, "6.1"),
    ("te-and-cl", post(CH + b"Content-Length: 5\r\n", b"0\r\n\r\n"), 400, "6.1 smuggling"),
    ("cl-and-te", post(b"Content-Length: 5\r\n" + CH, b"0\r\n\r\n"), 400, "6.1 smuggling"),
    ("te-http10", b"POST / HTTP/1.0\r\n" + CH + b"\r\n0\r\n\r\n", 400, "6.1"),
    # --- chunked body (RFC 9112 section 7.1) --------------------------------------------
    ("chunks", post(CH, b"5\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT"),
     {"body": b"hello0123456789", "unused": b"NEXT"}, "7.1"),
    ("chunk-hex-case", post(CH, b"a\r\n0123456789\r\n0\r\n\r\n"), {"body": b"0123456789"}, "7.1"),
    ("chunk-leading-zeros", post(CH, b"0005\r\nhello\r\n000\r\n\r\n"), {"body": b"hello"}, "7.1"),
    ("chunk-ext", post(CH, b"5;a=b;c;d=\"x;y\\\"\"\r\nhello\r\n0;z\r\n\r\n"), {"body": b"hello"},
     "7.1.1"),
    ("chunk-ext-bws", post(CH, b"5 ; a = b\r\nhello\r\n0\r\n\r\n"), {"body": b"hello"}, "7.1.1 BWS"),
    ("chunk-ext-ctl", post(CH, b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), 400, "7.1.1"),
    ("chunk-ext-bare-cr", post(CH, b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400, "7.1.1 / 2.2"),
    ("chunk-ext-nul", post(CH, b"5;a\x00\r\nhello\r\n0\r\n\r\n"), 400, "7.1.1"),
    ("chunk-ext-bad-quote", post(CH, b"5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400, "7.1.1"),
    ("chunk-ext-too-long", post(CH, b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n"), 400,
     "limit"),
    ("chunk-size-space", post(CH, b"5 \r\nhello\r\n0\r\n\r\n"), 400, "7.1 strict"),
    ("chunk-size-lead-space", post(CH, b" 5\r\nhello\r\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-size-0x", post(CH, b"0x5\r\nhello\r\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-size-sign", post(CH, b"+5\r\nhello\r\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-size-empty", post(CH, b"\r\nhello\r\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-size-too-many-digits", post(CH, b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"), 400,
     "bounded"),
    ("chunk-size-bare-lf", post(CH, b"5\nhello\r\n0\r\n\r\n"), 400, "2.2"),
    ("chunk-data-no-crlf", post(CH, b"5\r\nhelloX\r\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-data-lf-only", post(CH, b"5\r\nhello\n0\r\n\r\n"), 400, "7.1"),
    ("chunk-over-max-body", post(CH, b"40000001\r\n"), 413, "limit"),
    ("trailers", post(CH, b"1\r\nx\r\n0\r\nX-T: 1\r\nX-U:  2 \r\n\r\n"),
     {"body": b"x", "trailers": [("X-T", "1"), ("X-U", "2")],
      "headers": [("Host", "example.com"), ("Transfer-Encoding", "chunked")]}, "7.1.2"),
    ("trailer-fold", post(CH, b"0\r\nX: a\r\n b\r\n\r\n"), 400, "5.2"),
    ("trailer-ctl", post(CH, b"0\r\nX: a\x01\r\n\r\n"), 400, "9110 5.5"),
    ("trailer-bare-lf", post(CH, b"0\r\nX: a\n\r\n"), 400, "2.2"),
    ("trailer-too-large", post(CH, b"0\r\nX: " + b"a" * 17000 + b"\r\n\r\n"), 431, "limit"),
    ("trailer-too-many", post(CH, b"0\r\n" + b"X: a\r\n" * 101 + b"\r\n"), 431, "limit"),
    ("incomplete-chunked", post(CH, b"5\r\nhel"), "incomplete", "7.1"),
    ("incomplete-head", b"GET / HTTP/1.1\r\nHost: a\r\n", "incomplete", "2.2"),
    # --- Expect (RFC 9110 section 10.1.1) ---------------------------------------------
    ("expect-100", post(b"Expect: 100-continue\r\nContent-Length: 1\r\n", b"x"),
     {"expect_continue": True}, "9110 10.1.1"),
    ("expect-100-case", post(b"Expect: 100-Continue\r\nContent-Length: 1\r\n", b"x"),
     {"expect_continue": True}, "9110 10.1.1"),
    ("expect-100-http10", b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
     {"expect_continue": False}, "9110 10.1.1 ignore in 1.0"),
    ("expect-other", get(b"Expect: foo\r\n"), 417, "9110 10.1.1"),
    ("expect-empty", get(b"Expect:\r\n"), {"expect_continue": False}, "9110 5.6.1"),
    ("expect-empty-members", get(b"Expect: , 100-continue,\r\n"), {"expect_continue": True},
     "9110 5.6.1"),
    ("expect-mixed", get(b"Expect: 100-continue, foo\r\n"), 417, "9110 10.1.1"),
    # --- persistence (RFC 9112 section 9.3) ------------------------------------------------
    ("close", get(b"Connection: close\r\n"), {"keep_alive": False}, "9.3"),
    ("close-list", get(b"Connection: Upgrade, CLOSE\r\n"), {"keep_alive": False}, "9.3"),
    ("close-2fields", get(b"Connection: foo\r\nConnection: close\r\n"), {"keep_alive": False}, "9.3"),
    ("keep-alive-11", get(b"Connection: keep-alive\r\n"), {"keep_alive": True}, "9.3"),
    ("http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", {"keep_alive": True},
     "9.3"),
    ("http10-ka-close", b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     {"keep_alive": False}, "9.3"),
]

# --- request-target grammar (RFC 9112 section 3.2, RFC 3986; SHOULD answer 400) -------------
#: Characters VCHAR allows and the URI grammar does not (RFC 3986 section 2), by name.
OUTSIDE_URI = {"dquote": b'"', "backslash": b"\\", "pipe": b"|", "lt": b"<", "gt": b">",
               "lbrace": b"{", "rbrace": b"}", "caret": b"^", "backtick": b"`",
               "nonascii": b"\xc3\xa9", "latin1": b"\xff"}
#: The four target forms, each with a slot for the odd character(s).
FORMS = {"origin": b"GET /a%sb", "absolute": b"GET http://h/a%sb",
         "absolute-query": b"GET http://h?q=%s", "authority": b"CONNECT h%s:443",
         "asterisk": b"OPTIONS *%s"}
VECTORS += [
    (f"target-{form}-{name}", get(line=line % ch + b" HTTP/1.1"), 400, "3.2 / RFC 3986 2")
    for name, ch in OUTSIDE_URI.items() for form, line in FORMS.items()
]
VECTORS += [
    (f"target-{form}-fragment", get(line=line % b"#f" + b" HTTP/1.1"), 400, "9110 4.2.5")
    for form, line in FORMS.items()
]
VECTORS += [
    ("target-fragment-empty", get(line=b"GET /a# HTTP/1.1"), 400, "9110 4.2.5"),
    ("target-fragment-only", get(line=b"GET /# HTTP/1.1"), 400, "9110 4.2.5"),
    ("target-uri-chars", get(line=b"GET /~!$&'()*+,;=:@-._/%20?/?[]@ HTTP/1.1"),
     {"target": "/~!$&'()*+,;=:@-._/%20?/?[]@"}, "RFC 3986 3.3, 3.4"),
    ("target-percent-nonascii", get(line=b"GET /caf%C3%A9 HTTP/1.1"),
     {"target": "/caf%C3%A9"}, "RFC 3986 2.1"),
    # absolute-form: the authority is a host by the rules of Host, no userinfo
    ("absolute-bad-authority", get(line=b"PUT s://]ufd/: HTTP/1.1"), 400, "3.2.2 / 9110 7.2"),
    ("absolute-bracket-open", get(line=b"GET http://[::1/ HTTP/1.1"), 400, "RFC 3986 3.2.2"),
    ("absolute-bad-port", get(line=b"GET http://h:8x/ HTTP/1.1"), 400, "RFC 3986 3.2.3"),
    ("absolute-two-ports", get(line=b"GET http://h:80:80/ HTTP/1.1"), 400, "RFC 3986 3.2.3"),
    ("absolute-port-only", get(line=b"GET http://:80/ HTTP/1.1"), 400, "9110 4.2.1"),
    ("absolute-userinfo", get(line=b"GET http://u@h/ HTTP/1.1"), 400, "9110 4.2.4"),
    ("absolute-userinfo-pass", get(line=b"GET http://u:p@h:80/x HTTP/1.1"), 400, "9110 4.2.4"),
    ("absolute-userinfo-empty", get(line=b"GET http://@h/ HTTP/1.1"), 400, "9110 4.2.4"),
    ("absolute-no-slashes", get(line=b"GET http:h/ HTTP/1.1"), 400, "3.2.2 hierarchical"),
    ("absolute-bad-scheme", get(line=b"GET 1http://h/ HTTP/1.1"), 400, "RFC 3986 3.1"),
    ("absolute-ipv6", get(line=b"GET http://[::1]:80/x HTTP/1.1"),
     {"target": "http://[::1]:80/x"}, "3.2.2"),
    ("absolute-ipv4", get(line=b"GET http://127.0.0.1:8/a HTTP/1.1"),
     {"target": "http://127.0.0.1:8/a"}, "3.2.2"),
    ("absolute-no-path", get(line=b"GET http://h HTTP/1.1"), {"target": "http://h"}, "3.2.2"),
    ("absolute-query-only", get(line=b"GET http://h?x HTTP/1.1"), {"target": "http://h?x"},
     "RFC 3986 3.3 path-abempty"),
    ("absolute-empty-port", get(line=b"GET http://h:/ HTTP/1.1"), {"target": "http://h:/"},
     "RFC 3986 3.2.3"),
    ("absolute-other-scheme", get(line=b"GET ftp://h.example/f HTTP/1.1"),
     {"target": "ftp://h.example/f"}, "3.2.2 absolute-URI"),
    ("absolute-upper-scheme", get(line=b"GET HTTP://H/ HTTP/1.1"), {"target": "HTTP://H/"},
     "RFC 3986 3.1"),
    ("connect-userinfo", get(line=b"CONNECT u@h:443 HTTP/1.1"), 400, "3.2.3 / 9110 4.2.4"),
]

IDS = [v[0] for v in VECTORS]
assert len(set(IDS)) == len(IDS), "duplicate vector ids"


def check(outcome: Outcome, expected: Any) -> None:
    if isinstance(expected, int):
        assert outcome.kind == "error", outcome
        assert outcome.status == expected, outcome
        assert outcome.close, "framing/protocol errors must close the connection"
        return
    if expected == "incomplete":
        assert outcome.kind == "incomplete", outcome
        return
    assert outcome.kind == "ok", outcome
    req = outcome.request
    for name, value in expected.items():
        if name == "headers":
            assert req.headers.items() == value
        elif name in ("body", "unused"):
            assert getattr(outcome, name) == value
        elif name == "trailers":
            assert outcome.trailers == value
        else:
            assert getattr(req, name) == value, name


@pytest.mark.parametrize(("data", "expected"), [(v[1], v[2]) for v in VECTORS], ids=IDS)
def test_vector(data: bytes, expected: Any) -> None:
    reference = replay(data, whole(data))
    check(reference, expected)
    # Byte at a time costs O(n**2) scanning; big vectors get small random pieces instead.
    if len(data) <= 8192:
        assert replay(data, bytewise()).key() == reference.key(), "byte-at-a-time disagrees"
    top = 16 if len(data) <= 8192 else 512
    for seed in range(6):
        got = replay(data, random_sizes(seed, top)).key()
        assert got == reference.key(), f"split seed {seed}"


def test_pipelined_heads_with_start() -> None:
    buf = get() + get(line=b"HEAD /x HTTP/1.1")
    first = find_head_end(buf)
    assert parse_head(buf[:first]).method == "GET"
    second = find_head_end(buf, first)
    assert second == len(buf)
    assert parse_head(buf[first:second]).method == "HEAD"


def test_find_head_end_needs_more() -> None:
    for prefix in (b"", b"\r\n", b"\r", b"GET / HTTP/1.1\r\nHost: a\r\n\r"):
        assert find_head_end(prefix) == -1


def test_limits_are_honoured() -> None:
    small = Limits(max_request_line=20, max_head=60, max_header_count=2)
    ok = b"GET /abcdefghijklm HTTP/1.1\r\nHost: a\r\n\r\n"
    line = len(b"GET /abcdefghijklm HTTP/1.1")
    with pytest.raises(HTTPError) as info:
        find_head_end(ok, 0, small)
    assert info.value.status == 414
    assert find_head_end(ok, 0, Limits(max_request_line=line, max_head=60)) == len(ok)
    assert parse_head(ok, Limits(max_request_line=line, max_head=60)).target == "/abcdefghijklm"
    for limits in (Limits(max_request_line=line - 1, max_head=60), small):
        with pytest.raises(HTTPError) as info:
            find_head_end(ok, 0, limits)
        assert info.value.status == 414
        with pytest.raises(HTTPError) as info:
            parse_head(ok, limits)
        assert info.value.status == 414
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 40 + b"\r\n\r\n"
    with pytest.raises(HTTPError) as info:
        parse_head(big, small)
    assert info.value.status == 431
    three = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n"
    with pytest.raises(HTTPError) as info:
        parse_head(three, small.replace(max_head=1000))
    assert info.value.status == 431


def test_head_limit_boundary() -> None:
    head = get()
    assert find_head_end(head, 0, Limits(max_request_line=20, max_head=len(head))) == len(head)
    with pytest.raises(HTTPError) as info:
        find_head_end(head, 0, Limits(max_request_line=20, max_head=len(head) - 1))
    assert info.value.status == 431
    assert parse_head(head, Limits(max_request_line=20, max_head=len(head))).method == "GET"


def test_parse_head_accepts_bytearray_and_keeps_raw_line() -> None:
    req = parse_head(bytearray(b"\r\n" + get(line=b"PUT /x?y HTTP/1.1")))
    assert req.raw_requestline == b"PUT /x?y HTTP/1.1\r\n"
    assert isinstance(req.raw_requestline, bytes)
    assert req.headers["HOST"] == "example.com"
    assert req.content_length is None and not req.chunked and not req.expect_continue


def test_parse_head_rejects_incomplete_or_extra() -> None:
    for bad in (b"GET / HTTP/1.1\r\nHost: a\r\n", get() + b"x", b"\r\n\r\n", get() + get()):
        with pytest.raises(HTTPError) as info:
            parse_head(bad)
        assert info.value.status == 400


def test_all_lists_public_names() -> None:
    assert sorted(http11.__all__) == sorted([
        "LAST_CHUNK", "ChunkedDecoder", "Request", "body_allowed", "encode_chunk",
        "find_head_end", "parse_head", "reason_phrase", "response_head", "validate_field",
        "CHUNKED", "LENGTH", "NO_BODY", "UNTIL_CLOSE", "BadResponse", "ResponseHead",
        "parse_response_head"])
    for name in http11.__all__:
        assert hasattr(http11, name)


def test_default_limits_used() -> None:
    assert DEFAULT_LIMITS.max_header_count == 100  # the vectors above assume the defaults


def test_lf_only_client_is_rejected_before_its_head_ends() -> None:
    # An LF-only client would otherwise wait for a CRLFCRLF that never comes (until 408).
    for partial in (b"GET / HTTP/1.1\n", b"GET / HTTP/1.1\r\nHost: a\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 5000 + b"\n\n"):
        with pytest.raises(HTTPError) as info:
            find_head_end(partial)
        assert info.value.status == 400
    # A CR at the very end may still be the start of a CRLF: not an error yet.
    assert find_head_end(b"GET / HTTP/1.1\r") == -1
    with pytest.raises(HTTPError):
        find_head_end(b"GET / HTTP/1.1\rX")


def test_bare_lf_after_start_of_pipelined_head() -> None:
    buf = get() + b"\nGET / HTTP/1.1\r\n"
    start = find_head_end(buf)
    with pytest.raises(HTTPError) as info:
        find_head_end(buf, start)
    assert info.value.status == 400


def test_host_cache_keeps_rejecting_bad_hosts() -> None:
    """The cache of validated Host values never lets an invalid one through, and is bounded."""
    from minihttp.errors import BadRequest as _BadRequest
    from minihttp.http11 import _head

    for i in range(_head._VALID_HOSTS_MAX + 10):
        parse_head(b"GET / HTTP/1.1\r\nHost: h%d.example\r\n\r\n" % i)
        assert len(_head._valid_hosts) <= _head._VALID_HOSTS_MAX
    parse_head(b"GET / HTTP/1.1\r\nHost: ok.example\r\n\r\n")
    for bad in (b"bad host", b"a/b", b"x@y"):
        with pytest.raises(_BadRequest):
            parse_head(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n")
        with pytest.raises(_BadRequest):
            parse_head(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n")  # not cached


@pytest.mark.timeout(20)
@pytest.mark.parametrize("tail", [b"\x01", b"x\x01", b"", b"x", b" x \t"])
def test_long_blank_field_values_parse_in_linear_time(tail: bytes) -> None:
    """A field line of ~60 KB of blanks (then a control byte, or not) is decided at once.

    With OWS and the value able to trade blanks, the regexes backtracked quadratically (a
    4 KB line took a minute): one request could hold a CPU for hours. The timeout catches it.
    """
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A:" + b" " * 60_000 + tail + b"\r\n\r\n"
    if b"\x01" in tail:
        with pytest.raises(HTTPError) as info:
            parse_head(head)
        assert info.value.status == 400
    else:
        assert parse_head(head).headers["x-a"] == tail.strip(b" \t").decode()
    # The trailer parser shares the field grammar.
    decoder = http11.ChunkedDecoder(DEFAULT_LIMITS.replace(max_trailer=70_000))
    trailer = b"0\r\nX-T:" + b" " * 60_000 + tail + b"\r\n\r\n"
    if b"\x01" in tail:
        with pytest.raises(HTTPError):
            decoder.feed(trailer)
    else:
        decoder.feed(trailer)
        assert decoder.done and decoder.trailers["x-t"] == tail.strip(b" \t").decode()


_HEAD_ALPHABET = "GETHOSThost:/ .1\r\n\t\x00\x7f\xe9aZ-"
_HEAD_LINES = st.one_of(
    st.text(_HEAD_ALPHABET, max_size=12),
    st.sampled_from(["Host: a", "host:b ", "Connection: close", "content-length: 1",
                     "Transfer-Encoding: x", "EXPECT:", "Connectio: x", "Hostx: y"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_HEAD_LINES, max_size=5),
       st.sampled_from(["GET / HTTP/1.1", "GET / HTTP/1.0", "GET / HTTP/2.0", "GET  / HTTP/1.1"]))
def test_head_regex_is_the_line_by_line_grammar(lines: list[str], request_line: str) -> None:
    """HEAD (with or without possessive quantifiers) accepts exactly the heads whose request
    line is REQUEST_LINE with major version 1 and whose every field line is a FIELD_LINE;
    HEAD_PLAIN those of them with no special field after a leading Host."""
    import sys

    from minihttp.http11 import _rules

    text = request_line + "\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    rl = _rules.REQUEST_LINE.fullmatch(request_line)
    expected = (rl is not None and rl.group(3) == "1"
                and all(_rules.FIELD_LINE.fullmatch(line) for line in lines))
    first = lines[0] if lines else ""
    host = first[5:].lstrip(" \t") if first[:5].lower() == "host:" else None
    later = lines[1:] if host is not None else lines
    special = any(line.lower().startswith(tuple(n + ":" for n in _rules.SPECIAL_NAMES))
                  for line in later)
    possessive = [False, True] if sys.version_info >= (3, 11) else [False]
    for p in possessive:
        for plain in (False, True):
            regex = _rules.head_regex(p, plain)
            m = regex.fullmatch(text)
            assert (m is not None) == (expected and not (plain and special)), (regex.pattern, text)
            if m is not None:
                assert m.group(4) == host


# -- the one-regex branch of head_fields for every target form ----------------------------

_TARGET_PIECES = ["http://", "HTTP://", "https://", "ftp://", "h", "a.example", "1.2.3.4",
                  "[::1]", "[", ":", ":80", ":x", "/", "/p", "?", "?q=1", "@", "u@", "*",
                  "%41", "~", "://", "h:443"]


def _outcome_of(parse: Any) -> Any:
    try:
        return parse()
    except HTTPError as err:
        return (type(err), err.status, err.message)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["GET", "CONNECT", "OPTIONS", "POST"]),
       st.lists(st.sampled_from(_TARGET_PIECES), min_size=1, max_size=5),
       st.sampled_from(["a.example", "h:443", "", "bad host", "[::1]:8"]),
       st.sampled_from(["0", "1"]))
def test_head_fields_any_target_form_agrees_with_the_long_way(
        method: str, pieces: list[str], host: str, minor: str) -> None:
    """A head with Host first and no other field the server acts on is parsed by one regex
    whatever its target's form (absolute-form through a proxy, CONNECT, ``*``); the result,
    or the error, is what the long way (:func:`_head._parse`, every check) gives."""
    from minihttp.http11 import _head

    head = (f"{method} {''.join(pieces)} HTTP/1.{minor}\r\nHost: {host}\r\n"
            "User-Agent: t\r\n\r\n").encode("latin-1")
    text = head.decode("latin-1")
    for _ in range(2):  # a second time with the caches warm
        fast = _outcome_of(lambda: _head.head_fields(head))
        slow = _outcome_of(lambda: _head._parse(head, text, DEFAULT_LIMITS))
        assert fast == slow, head


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TARGET_PIECES), min_size=1, max_size=6))
def test_absolute_form_by_authority_is_the_regex(pieces: list[str]) -> None:
    """_head._absolute_form (the regex once per authority) answers as ABSOLUTE_FORM does,
    the first time and from its cache."""
    from minihttp.http11 import _head, _rules

    target = "".join(pieces)
    expected = _rules.ABSOLUTE_FORM.fullmatch(target) is not None
    assert _head._absolute_form(target) is expected
    assert _head._absolute_form(target) is expected


def test_absolute_form_cache_is_bounded_and_keeps_rejecting() -> None:
    from minihttp.http11 import _head

    for i in range(_head._VALID_AUTHORITIES_MAX + 10):
        assert _head._absolute_form(f"http://h{i}.example:80/p")
        assert len(_head._valid_authorities) <= _head._VALID_AUTHORITIES_MAX
    for bad in ("http://a b/", "http://h:x/", "http:///p", "http://:80/", "http://u@h/"):
        assert not _head._absolute_form(bad)
        assert not _head._absolute_form(bad)  # not cached
        with pytest.raises(HTTPError) as info:
            parse_head(f"GET {bad} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert info.value.status == 400
