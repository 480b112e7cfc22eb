"""Bad-input vectors for the live-server adversarial suite (tests/test_adversarial.py).

Each vector is raw bytes sent to a live server, the statuses expected in order, whether the
server must close the connection afterwards, and the rule behind the expectation. When a
vector expects the connection to stay open, the test sends a probe request afterwards, which
must be answered: that checks the server is still in sync. Any request named ``/smuggled``
must never be answered. Server limits are :data:`adversarial.LIMITS` (request line 1024,
head 4096, 20 fields, body 1000, chunk line 64, trailers 512).

``server`` is ``"echo"`` (an echo handler; POST/PUT read the body, GET/HEAD/OPTIONS leave it
for the server to drain) or ``"static"`` (SimpleHTTPRequestHandler on a tmp tree, see
``make_static_tree``).
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@dataclass(frozen=True)
class Vector:
    name: str
    data: bytes
    statuses: tuple[int, ...]  # expected answers in order; () = closed without an answer
    closes: bool  # the server must close after the answers
    rule: str  # the RFC rule (or project rule) behind the expectation
    server: str = "echo"
    location: str | None = None  # expected Location of a redirect (static vectors)
    body: bytes | None = None  # expected body of the first response (static vectors)


def req(line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    """A request: line, fields, blank line, body, all joined with CRLF."""
    return CRLF.join([line, *fields]) + CRLF + CRLF + body


def post(*fields: bytes, body: bytes = b"", target: bytes = b"/") -> bytes:
    return req(b"POST " + target + b" HTTP/1.1", b"Host: a", *fields, body=body)


def get(target: bytes = b"/", *fields: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return req(b"GET " + target + b" " + version, b"Host: a", *fields)


TE = b"Transfer-Encoding: chunked"
CHUNKED_OK = b"5\r\nhello\r\n0\r\n\r\n"

R_CLTE = "RFC 9112 6.1: CL with TE is faulty framing; a server MAY reject it and MUST close"
R_TE10 = "RFC 9112 6.1: TE in an HTTP/1.0 request is faulty framing: reject and close"
R_TEOBF = ("RFC 9112 6.1/5.1: Transfer-Encoding must be exactly the token list 'chunked'; "
           "any obfuscation is a bad field or an unknown coding (400/501), close")
R_TEUNK = "RFC 9112 6.1: a transfer coding the server does not understand: 501, close"
R_CL = "RFC 9112 6.3 rule 5 / RFC 9110 8.6: Content-Length = 1*DIGIT, one value; else 400, close"
R_CHUNK = "RFC 9112 7.1: chunk-size = 1*HEXDIG, then CRLF; chunk-data then CRLF; else 400, close"
R_EXT = "RFC 9112 7.1.1: chunk-ext is token/quoted-string; no CR, NUL or controls: 400, close"
R_TRAILER = ("RFC 9110 6.5.1: trailer fields are never merged; framing fields in them do not "
             "change framing (the next request is still found at the right place)")
R_SPCOLON = "RFC 9112 5.1: whitespace between field name and colon MUST be rejected with 400"
R_FOLD = "RFC 9112 5.2: obs-fold in a request: reject with 400 (or replace with SP)"
R_CRLF = "RFC 9112 2.2: bare CR MUST be rejected; bare LF is rejected here (strict), 400"
R_CTL = "RFC 9110 5.5: field values are VCHAR/obs-text/SP/HTAB; CTL bytes are invalid: 400"
R_TOKEN = "RFC 9110 5.1: field-name = token; anything else is 400"
R_HOST = "RFC 9112 3.2: an HTTP/1.1 request without Host, or with several, MUST get 400"
R_MANY = "RFC 6585 5: too many or too large header fields: 431, close"
R_LINE = "RFC 9112 3: request-line = method SP request-target SP HTTP-version CRLF; else 400"
R_VER = "RFC 9110 6.2 / 15.6.6: major version other than 1: 505"
R_METH = "RFC 9110 9.1: method = token; an unknown method is 501 (connection kept)"
R_TARGET = "RFC 9112 3.2: request-target forms; others and non-VCHAR bytes are 400"
R_URI = ("RFC 9112 3.2 / RFC 3986 2 / RFC 9110 4.2.5: a target holds URI characters only, and "
         "no fragment; else 400 (SHOULD), close")
R_AUTH = ("RFC 9112 3.2.2-3 / RFC 9110 4.2.4, 7.2: an absolute-form authority is a valid "
          "host[:port], no userinfo; else 400, close")
R_LONG = "RFC 9112 3 / RFC 9110 15.5.15: request line over the limit: 414, close"
R_EMPTY = "RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line"
R_LEFT = ("RFC 9112 6.3 / 9.6: after a framing error the rest of the stream cannot be trusted: "
          "close, never parse it as a request")
R_BODY = "RFC 9112 6.3: the body is exactly Content-Length bytes; bytes in it are not requests"
R_OK = "RFC 9112: well-formed request, control case"
R_STATIC = "RFC 9110 / project: static paths never leave the served directory"


V: list[Vector] = []


def add(name: str, data: bytes, statuses: tuple[int, ...], closes: bool, rule: str,
        **kw: object) -> None:
    V.append(Vector(name, data, statuses, closes, rule, **kw))  # type: ignore[arg-type]


# --- controls (must pass, so that rejections elsewhere mean something) -----------------------
add("ok-get", get(), (200,), False, R_OK)
add("ok-pipelined-2", get() + get(b"/2"), (200, 200), False, R_OK)
add("ok-post-cl", post(b"Content-Length: 5", body=b"hello"), (200,), False, R_OK)
add("ok-post-chunked", post(TE, body=CHUNKED_OK), (200,), False, R_OK)
add("ok-chunked-ext", post(TE, body=b"5;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n"), (200,), False, R_OK)
add("ok-chunked-trailer", post(TE, body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), (200,), False, R_OK)
add("ok-chunked-upper-hex", post(TE, body=b"A\r\n0123456789\r\n0\r\n\r\n"), (200,), False, R_OK)
add("ok-chunked-leading-zeros", post(TE, body=b"0005\r\nhello\r\n000\r\n\r\n"), (200,), False, R_OK)
add("ok-http10", req(b"GET / HTTP/1.0"), (200,), True, "RFC 9112 9.3: HTTP/1.0 closes by default")
add("ok-http10-keepalive", req(b"GET / HTTP/1.0", b"Connection: keep-alive"), (200,), False,
    "RFC 9112 9.3 / RFC 2068 19.7.1: HTTP/1.0 keep-alive")
add("ok-connection-close", get(b"/", b"Connection: close") + SMUGGLED, (200,), True,
    "RFC 9112 9.6: nothing after a request with Connection: close is read")
add("ok-http11-minor-2", req(b"GET / HTTP/1.2", b"Host: a"), (200,), False,
    "RFC 9110 6.2: a higher minor version is treated as the highest supported")
add("ok-head", req(b"HEAD / HTTP/1.1", b"Host: a"), (200,), False, R_OK)
add("ok-options-star", req(b"OPTIONS * HTTP/1.1", b"Host: a"), (200,), False,
    "RFC 9112 3.2.4: asterisk-form for OPTIONS")
add("ok-absolute-form", get(b"http://a/x"), (200,), False, "RFC 9112 3.2.2: absolute-form")
add("ok-tab-in-value", get(b"/", b"X-A:\tv\t"), (200,), False, "RFC 9110 5.5: OWS is SP/HTAB")
add("ok-obs-text", get(b"/", b"X-A: caf\xe9"), (200,), False, "RFC 9110 5.5: obs-text allowed")
add("ok-empty-value", get(b"/", b"X-A:"), (200,), False, "RFC 9110 5.5: empty field value")
add("ok-cl-zero", post(b"Content-Length: 0"), (200,), False, R_OK)
add("ok-cl-leading-zeros", post(b"Content-Length: 005", body=b"hello"), (200,), False,
    "RFC 9110 8.6: 1*DIGIT, leading zeros are digits")
add("ok-te-case", post(b"Transfer-Encoding: Chunked", body=CHUNKED_OK), (200,), False,
    "RFC 9112 7: transfer-coding names are case-insensitive")
add("ok-query", get(b"/x?a=b&c=%20"), (200,), False, R_OK)
add("ok-10-no-host", req(b"GET / HTTP/1.0"), (200,), True, "RFC 9112 3.2: Host only required in 1.1")

# --- CL + TE, both orders, and variants ------------------------------------------------------
for i, (a, b) in enumerate([
    (b"Content-Length: 5", TE), (TE, b"Content-Length: 5"),
    (b"Content-Length: 0", TE), (TE, b"Content-Length: 0"),
    (b"Content-Length: 40", TE), (b"content-length: 5", b"transfer-encoding: chunked"),
]):
    add(f"clte-{i}", post(a, b, body=b"0\r\n\r\n" + SMUGGLED), (400,), True, R_CLTE)
add("clte-te-identity", post(b"Content-Length: 5", b"Transfer-Encoding: identity",
                             body=b"hello" + SMUGGLED), (400,), True, R_CLTE)
add("clte-te-list", post(b"Content-Length: 5", b"Transfer-Encoding: gzip, chunked",
                         body=b"hello" + SMUGGLED), (400,), True, R_CLTE)
add("clte-te-bad-name", post(b"Content-Length: 5", b"Transfer-Encoding : chunked",
                             body=b"hello" + SMUGGLED), (400,), True, R_SPCOLON)

# --- Content-Length forms --------------------------------------------------------------------
for i, cl in enumerate([
    b"Content-Length: 5\r\nContent-Length: 5", b"Content-Length: 5\r\nContent-Length: 6",
    b"Content-Length: 5, 5", b"Content-Length: 5,5", b"Content-Length: +5", b"Content-Length: -5",
    b"Content-Length: 0x5", b"Content-Length: 5_0", b"Content-Length: 1_000", b"Content-Length: 5.0",
    b"Content-Length: 5e0", b"Content-Length: ", b"Content-Length: five", b"Content-Length: 5 5",
    b"Content-Length: \xd9\xa5", b"Content-Length: 99999999999999999999999",
    b"Content-Length: 5\x00", b"Content-Length: 5\x0b", b"Content-Length: \x0c5",
    b"Content-Length: 5a",
]):
    add(f"cl-bad-{i}", post(cl, body=b"hello" + SMUGGLED), (400,), True, R_CL)
add("cl-too-big", post(b"Content-Length: 1001", body=b"x" * 20), (413,), True,
    "RFC 9110 15.5.14: body over the limit: 413 before reading it, close")
add("cl-huge-18-digits", post(b"Content-Length: 999999999999999999", body=b"x"), (413,), True,
    "RFC 9110 15.5.14: declared body over the limit: 413")

# --- obfuscated Transfer-Encoding ------------------------------------------------------------
for i, te in enumerate([
    b"Transfer-Encoding: xchunked", b"Transfer-Encoding: chunked-false",
    b"Transfer-Encoding: chunk", b"Transfer-Encoding: \"chunked\"",
    b"Transfer-Encoding: chunked, identity", b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked;q=1",
]):
    add(f"te-unknown-{i}", post(te, body=CHUNKED_OK + SMUGGLED), (400,) if b";" in te or b"\"" in te
        or b"chunked," in te else (501,), True, R_TEUNK)
for i, te in enumerate([
    b"Transfer-Encoding : chunked", b" Transfer-Encoding: chunked", b"Transfer-Encoding\t: chunked",
    b"Transfer-Encoding: chunked\x00", b"Transfer-Encoding: \x0bchunked",
    b"Transfer-Encoding: ch\runked", b"Transfer-Encoding: chunked\r\n\t",
    b"Transfer-Encoding: chunked\r\n folded", b"Transfer-\x00Encoding: chunked",
    b"Transfer-Encoding: chunked, chunked", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    b"Transfer-Encoding: ,chunked", b"Transfer-Encoding: chunked,", b"Transfer-Encoding: chunked\x7f",
    b"Transfer-Encoding: \xffchunked",
]):
    add(f"te-obf-{i}", post(te, body=CHUNKED_OK + SMUGGLED), (400,), True, R_TEOBF)
add("te-underscore-only", post(b"Transfer_Encoding: chunked", body=CHUNKED_OK),
    (200,), False, "RFC 9110 5.1: Transfer_Encoding is another field; no body, so the chunk "
    "bytes that follow are the next 'request': 400 after the 200")
# the line above: the chunk bytes become a bad request line -> (200, 400)
V[-1] = Vector(V[-1].name, V[-1].data, (200, 400), True, V[-1].rule)
add("te-underscore-with-cl", post(b"Transfer_Encoding: chunked", b"Content-Length: 5",
                                  body=CHUNKED_OK), (200, 400), True,
    "RFC 9110 5.1: only Content-Length frames it; the rest is a bad request line")
add("te-http10", req(b"POST / HTTP/1.0", TE, body=CHUNKED_OK + SMUGGLED), (400,), True, R_TE10)
add("te-http10-cl", req(b"POST / HTTP/1.0", TE, b"Content-Length: 5", body=b"hello"), (400,),
    True, R_TE10)
add("te-http10-keepalive", req(b"POST / HTTP/1.0", TE, b"Connection: keep-alive",
                               body=CHUNKED_OK + SMUGGLED), (400,), True, R_TE10)

# --- bad chunk sizes and terminators ---------------------------------------------------------
for i, body in enumerate([
    b"-5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n", b"5 \r\nhello\r\n0\r\n\r\n", b"g\r\nhello\r\n0\r\n\r\n",
    b"\r\nhello\r\n0\r\n\r\n", b"5_0\r\nhello\r\n0\r\n\r\n", b"fffffffffffffffff1\r\nhello\r\n",
    b"5\nhello\r\n0\r\n\r\n", b"5\rhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n",
    b"5\r\nhello\n0\r\n\r\n", b"5\r\nhello\r0\r\n\r\n", b"5\r\nhelloworld\r\n0\r\n\r\n",
    b"3\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\n", b"5\r\nhello\r\n0\n\r\n",
    b"5\r\nhello\r\n0\r\r\n", b"\xd9\xa5\r\nhello\r\n0\r\n\r\n", b"5\x00\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r\x00",
]):
    add(f"chunk-bad-{i}", post(TE, body=body + SMUGGLED), (400,), True, R_CHUNK)
add("chunk-too-long-line", post(TE, body=b"5;" + b"a" * 80 + b"\r\nhello\r\n0\r\n\r\n"),
    (400,), True, "RFC 9112 7.1.1: a server limits chunk extensions; over it: 400, close")
add("chunk-body-too-big", post(TE, body=b"3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n"),
    (413,), True, "RFC 9110 15.5.14: decoded body over the limit: 413")

# --- chunk extensions with CR, NUL or bad syntax ---------------------------------------------
for i, ext in enumerate([
    b";a\rb", b";a=b\rc", b";a\x00", b";a=\x00", b";\x01", b";a=\"b\rc\"", b";a=\"b\x00\"",
    b";", b";=b", b";a=", b";a b", b";a=b c", b";a=\"unterminated", b";a=\"b\\\"", b";\x7f",
    b";a=b\n",
]):
    add(f"chunk-ext-{i}", post(TE, body=b"5" + ext + b"\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
        (400,), True, R_EXT)

# --- trailers carrying framing headers (never merged; framing unchanged) ----------------------
for i, tr in enumerate([
    b"Content-Length: 50", b"Transfer-Encoding: chunked", b"Host: evil", b"Content-Length: 0",
]):
    add(f"trailer-framing-{i}", post(TE, body=b"5\r\nhello\r\n0\r\n" + tr + b"\r\n\r\n")
        + get(b"/second"), (200, 200), False, R_TRAILER)
for i, tr in enumerate([b"X : 1", b" X: 1", b"X: a\rb", b"X\x00: 1", b"X: 1\r\n folded", b"X: \x01"]):
    add(f"trailer-bad-{i}", post(TE, body=b"5\r\nhello\r\n0\r\n" + tr + b"\r\n\r\n" + SMUGGLED),
        (400,), True, "RFC 9112 7.1.2: trailer fields obey the field syntax: 400, close")
add("trailer-too-big", post(TE, body=b"0\r\n" + b"X-T: " + b"a" * 600 + b"\r\n\r\n"), (431,),
    True, "RFC 6585 5: trailer section over the limit: 431")

# --- header syntax ---------------------------------------------------------------------------
for i, f in enumerate([b"Host : a", b"X-A : b", b"X-A\t: b"]):
    add(f"hdr-space-colon-{i}", req(b"GET / HTTP/1.1", b"Host: a" if i else b"X: y", f)
        + SMUGGLED, (400,), True, R_SPCOLON)
for i, f in enumerate([b"X-A: b\r\n c", b"X-A: b\r\n\tc", b"X-A:\r\n c"]):
    add(f"hdr-obsfold-{i}", get(b"/", f) + SMUGGLED, (400,), True, R_FOLD)
add("hdr-fold-first-line", req(b"GET / HTTP/1.1", b" Host: a") + SMUGGLED, (400,), True,
    "RFC 9112 2.2: whitespace before the first field line: reject (400)")
for i, f in enumerate([b"X-A: b\rc", b"X-A: b\r", b"X\r-A: b"]):
    add(f"hdr-bare-cr-{i}", get(b"/", f) + SMUGGLED, (400,), True, R_CRLF)
add("hdr-bare-lf", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n" + SMUGGLED, (400,), True, R_CRLF)
add("hdr-all-bare-lf", b"GET / HTTP/1.1\nHost: a\n\n" + SMUGGLED, (400,), True, R_CRLF)
add("hdr-lf-end", b"GET / HTTP/1.1\r\nHost: a\r\n\n" + SMUGGLED, (400,), True, R_CRLF)
add("hdr-bare-cr-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n" + SMUGGLED, (400,), True, R_CRLF)
for c in [0, 1, 8, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F]:
    add(f"hdr-ctl-{c:02x}", get(b"/", b"X-A: a" + bytes([c]) + b"b") + SMUGGLED, (400,), True, R_CTL)
for i, n in enumerate([b"X(A)", b"X A", b"X\"A", b"X/A", b"X@A", b"X[A]", b"X{A}", b"X=A",
                       b"", b"X\xe9", b"X,A", b"X;A"]):
    add(f"hdr-name-{i}", get(b"/", n + b": v") + SMUGGLED, (400,), True, R_TOKEN)
add("hdr-no-colon", get(b"/", b"X-A b") + SMUGGLED, (400,), True, R_TOKEN)
add("host-missing", req(b"GET / HTTP/1.1") + SMUGGLED, (400,), True, R_HOST)
add("host-duplicate", req(b"GET / HTTP/1.1", b"Host: a", b"Host: b") + SMUGGLED, (400,), True,
    R_HOST)
add("host-duplicate-same", req(b"GET / HTTP/1.1", b"Host: a", b"host: a") + SMUGGLED, (400,),
    True, R_HOST)
add("host-list", req(b"GET / HTTP/1.1", b"Host: a, b") + SMUGGLED, (400,), True,
    "RFC 9110 7.2: Host = uri-host [':' port]; a list is invalid")
add("host-bad-char", req(b"GET / HTTP/1.1", b"Host: a b") + SMUGGLED, (400,), True,
    "RFC 9110 7.2: Host = uri-host [':' port]")
add("too-many-fields", get(b"/", *[b"X-%d: v" % i for i in range(25)]) + SMUGGLED, (431,), True,
    R_MANY)
add("too-long-field", get(b"/", b"X-A: " + b"v" * 5000) + SMUGGLED, (431,), True, R_MANY)
add("too-long-head-many", get(b"/", *[b"X-%d: " % i + b"v" * 300 for i in range(15)]) + SMUGGLED,
    (431,), True, R_MANY)

# --- request lines ---------------------------------------------------------------------------
for i, line in enumerate([
    b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b"GET / HTTP/1.1 ", b" GET / HTTP/1.1",
    b"GET\t/ HTTP/1.1", b"GET / http/1.1", b"GET / HTTP/1", b"GET / HTTP/1.", b"GET / HTTP/11",
    b"GET / HTTP/1.1.1", b"GET / HTTP/1.01", b"GET / HTTPS/1.1", b"GET /", b"GET", b"GET / HTTP/ 1.1",
    b"GET / HTTP/\xd9\xa1.1",
]):
    add(f"line-bad-{i}", req(line, b"Host: a") + SMUGGLED, (400,), True, R_LINE)
for i, line in enumerate([b"GET / HTTP/2.0", b"GET / HTTP/0.9", b"GET / HTTP/3.0", b"GET / HTTP/9.9"]):
    add(f"line-version-{i}", req(line, b"Host: a") + SMUGGLED, (505,), True, R_VER)
add("line-prior-knowledge-h2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (505,), True,
    "RFC 9113 3.4: an HTTP/2 preface to an HTTP/1.1 server: 505 and close")
for i, m in enumerate([b"G<T", b"GE T", b"GET\x00", b"G\xe9T", b"(GET)", b"GET/"]):
    add(f"method-bad-{i}", req(m + b" / HTTP/1.1", b"Host: a") + SMUGGLED, (400,), True, R_METH)
for i, m in enumerate([b"FOO", b"get", b"DELETE", b"PATCH", b"TRACE", b"A" * 40]):
    add(f"method-unknown-{i}", req(m + b" / HTTP/1.1", b"Host: a"), (501,), False, R_METH)
add("method-connect-no-handler", req(b"CONNECT a:443 HTTP/1.1", b"Host: a:443"), (501,), False,
    R_METH)
for i, t in enumerate([
    b"foo", b"*", b"a:80", b"/a b", b"/\x7f", b"/\xe9", b"/\x00", b"/a\tb", b"http://",
    b"//", b"/a\\b\x01", b"http:/a", b"?q",
]):
    # "//" is origin-form (an empty segment), so it is fine; the rest are bad
    if t == b"//":
        add("target-double-slash", get(t), (200,), False, "RFC 3986: '//' is a valid absolute-path")
        continue
    add(f"target-bad-{i}", get(t) + SMUGGLED, (400,), True, R_TARGET)
add("target-star-get", req(b"GET * HTTP/1.1", b"Host: a") + SMUGGLED, (400,), True,
    "RFC 9112 3.2.4: asterisk-form only for OPTIONS")
add("target-authority-get", req(b"GET a:443 HTTP/1.1", b"Host: a") + SMUGGLED, (400,), True,
    "RFC 9112 3.2.3: authority-form only for CONNECT")
# RFC 9112 3.2 / RFC 3986 2: characters outside the URI grammar, a fragment, userinfo and an
# absolute-form authority that is no host are 400 in every form; the connection closes.
for form, line in [(b"origin", b"GET /a%sb"), (b"absolute", b"GET http://a/%s"),
                   (b"connect", b"CONNECT a%s:443"), (b"asterisk", b"OPTIONS *%s")]:
    for name, ch in [(b"dquote", b'"'), (b"backslash", b"\\"), (b"pipe", b"|"), (b"lt", b"<"),
                     (b"gt", b">"), (b"lbrace", b"{"), (b"rbrace", b"}"), (b"caret", b"^"),
                     (b"backtick", b"`"), (b"nonascii", b"\xc3\xa9"), (b"fragment", b"#f")]:
        add(f"target-{form.decode()}-{name.decode()}",
            req(line % ch + b" HTTP/1.1", b"Host: a") + SMUGGLED, (400,), True, R_URI)
for i, t in enumerate([b"s://]ufd/:", b"http://[::1/", b"http://a:8x/", b"http://a:1:2/",
                       b"http://:80/", b"http://u@a/", b"http://u:p@a:80/x", b"http://@a/"]):
    add(f"target-absolute-authority-{i}", req(b"PUT " + t + b" HTTP/1.1", b"Host: a",
                                              b"Content-Length: 0") + SMUGGLED,
        (400,), True, R_AUTH)
add("target-connect-userinfo", req(b"CONNECT u@a:443 HTTP/1.1", b"Host: a") + SMUGGLED, (400,),
    True, R_AUTH)
add("ok-absolute-form-ipv6-port", get(b"http://[::1]:8/x?y"), (200,), False,
    "RFC 9112 3.2.2: absolute-form with an IP-literal and port")
add("ok-target-uri-chars", get(b"/~!$&'()*+,;=:@-._/%20?/?[]"), (200,), False,
    "RFC 3986 3.3/3.4: every pchar and query character")
add("line-too-long", get(b"/" + b"a" * 1100) + SMUGGLED, (414,), True, R_LONG)
add("line-too-long-no-end", b"GET /" + b"a" * 2000, (414,), True, R_LONG)
add("leading-empty-line", CRLF + get(), (200,), False, R_EMPTY)
add("leading-empty-lines-3", CRLF * 3 + get(), (200,), False, R_EMPTY)
add("leading-bare-lf", b"\n" + get() + SMUGGLED, (400,), True, R_CRLF)
add("leading-space-line", b" \r\n" + get() + SMUGGLED, (400,), True, R_LINE)
add("leading-empty-lines-too-many", CRLF * 2100 + get() + SMUGGLED, (431,), True,
    "RFC 9112 2.2 + project limit: empty lines count towards max_head: 431")
add("binary-garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + CRLF + CRLF,
    (400,), True, "RFC 9112 3: a TLS ClientHello is not a request line")

# --- leftovers after an error or a body ------------------------------------------------------
add("left-after-400", req(b"GET / HTTP/1.1", b"Host: a", b"X : b") + SMUGGLED + SMUGGLED,
    (400,), True, R_LEFT)
add("left-after-431", get(b"/", *[b"X-%d: v" % i for i in range(25)]) + SMUGGLED, (431,), True,
    R_LEFT)
add("left-after-505", req(b"GET / HTTP/2.0", b"Host: a") + SMUGGLED, (505,), True, R_LEFT)
add("left-after-413", post(b"Content-Length: 5000") + SMUGGLED, (413,), True, R_LEFT)
add("left-after-501-te", post(b"Transfer-Encoding: gzip", body=SMUGGLED), (501,), True, R_LEFT)
add("left-after-bad-chunk", post(TE, body=b"5\r\nhelloXX" + SMUGGLED), (400,), True, R_LEFT)
add("left-in-cl-body-post", post(b"Content-Length: %d" % len(SMUGGLED), body=SMUGGLED),
    (200,), False, R_BODY)
add("left-in-cl-body-get-drained", get(b"/", b"Content-Length: %d" % len(SMUGGLED)) + SMUGGLED,
    (200,), False, R_BODY + " (the server drains a body the handler did not read)")
add("left-in-chunked-body-get", get(b"/", TE) + b"%x\r\n" % len(SMUGGLED) + SMUGGLED
    + b"\r\n0\r\n\r\n", (200,), False, R_BODY)
add("left-in-chunked-body-post", post(TE, body=b"%x\r\n" % len(SMUGGLED) + SMUGGLED
                                      + b"\r\n0\r\n\r\n"), (200,), False, R_BODY)
add("left-body-then-next", post(b"Content-Length: 5", body=b"hello") + get(b"/next"),
    (200, 200), False, R_BODY)
add("left-after-501-method", req(b"FOO / HTTP/1.1", b"Host: a", b"Content-Length: %d"
                                 % len(SMUGGLED)) + SMUGGLED, (501,), False,
    "RFC 9112 6.3: the body of a refused request is still framed by its Content-Length")
add("left-expect-bad", post(b"Expect: fancy", b"Content-Length: 5", body=b"hello") + SMUGGLED,
    (417,), True, "RFC 9110 10.1.1: an unknown expectation: 417")

# --- static handler: path traversal and redirects ---------------------------------------------
S = dict(server="static")
add("static-ok", get(b"/a.txt"), (200,), False, R_OK, body=b"hello\n", **S)
for i, t in enumerate([
    b"/../secret.txt", b"/sub/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt", b"/..%2fsecret.txt", b"/sub/..%2f..%2fsecret.txt",
    b"/%2e%2e%2fsecret.txt", b"/..%5csecret.txt", b"/escape",
    b"/a.txt/", b"/a.txt%00", b"/a.txt%00.html", b"/nonexistent", b"/.%2e/secret.txt",
    b"/sub/%2e%2e%2f%2e%2e%2fsecret.txt", b"/%252e%252e/secret.txt",
]):
    # 404 (400 for a decoded NUL) from the static handler closes, as http.server's send_error
    add(f"static-traversal-{i}", get(t), (400,) if b"%00" in t else (404,), True, R_STATIC, **S)
add("static-traversal-raw-backslash", get(b"/..\\secret.txt"), (400,), True,
    R_URI + " (the parser refuses a raw backslash before the static handler sees it)", **S)
add("static-percent-nonascii", get(b"/caf%C3%A9.txt"), (200,), False,
    "RFC 3986 2.1: a percent-encoded UTF-8 name maps to the file", body=b"cafe\n", **S)
add("static-dotdot-refused", get(b"/sub/../a.txt"), (404,), True,
    "RFC 3986 5.2.4: clients remove dot segments; one that survives is an attack (404)", **S)
add("static-dir-redirect", get(b"/sub"), (301,), False,
    "RFC 9110 15.4.2: a directory without its slash is redirected", location="/sub/", **S)
add("static-dir-redirect-query", get(b"/sub?x=1"), (301,), False,
    "RFC 9110 15.4.2: the query is kept in the redirect", location="/sub/?x=1", **S)
add("static-no-open-redirect", get(b"//evil.example/sub"), (404,), True,
    "gh-87389: '//host' never becomes an off-site redirect", **S)
add("static-no-open-redirect-dir", get(b"//sub"), (301,), False,
    "gh-87389: redirect to a path, never to //host", location="/sub/", **S)
add("static-absolute-form", get(b"http://a/a.txt"), (200,), False,
    "RFC 9112 3.2.2: absolute-form maps to the path", body=b"hello\n", **S)
add("static-post", post(b"Content-Length: 5", body=b"hello"), (501,), False, R_METH, **S)
add("static-head-no-body", req(b"HEAD /a.txt HTTP/1.1", b"Host: a"), (200,), False,
    "RFC 9110 9.3.2: HEAD has no body", **S)

VECTORS: tuple[Vector, ...] = tuple(V)
BY_NAME = {v.name: v for v in VECTORS}
assert len(BY_NAME) == len(VECTORS), "vector names must be unique"
