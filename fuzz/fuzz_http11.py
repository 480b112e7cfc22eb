"""Atheris harness for the sans-I/O HTTP/1.1 core (long campaigns, not run in CI).

Each input is split by its first byte into a head part and a body part, fed to
``find_head_end`` / ``parse_head`` and, when the head says chunked, to ``ChunkedDecoder`` in
two pieces. Only :class:`minihttp.errors.HTTPError` may escape the core, with a 4xx/5xx status
that a *client* error can carry (never 500); anything else is a crash worth a test vector.
Invariants checked as well: a head fed whole and the same head found incrementally give the
same outcome; decoded chunked bodies never exceed ``max_body``.

Run: see fuzz/README.md.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from minihttp.config import Limits
    from minihttp.errors import HTTPError
    from minihttp.http11 import ChunkedDecoder, find_head_end, parse_head

# Small limits so the fuzzer reaches the size checks with small inputs.
LIMITS = Limits(max_request_line=256, max_head=1024, max_header_count=16, max_body=4096,
                max_chunk_line=64, max_trailer=256, max_discard=1024)
CLIENT_ERRORS = {400, 408, 411, 413, 414, 417, 431, 501, 505}


def _outcome(fn: object, *args: object) -> object:
    try:
        return ("ok", fn(*args))  # type: ignore[operator]
    except HTTPError as err:
        assert err.status in CLIENT_ERRORS, (err.status, err)
        return ("err", err.status)


def _find_incrementally(data: bytes) -> object:
    """find_head_end on growing prefixes, as the socket reader calls it."""
    for i in range(1, len(data) + 1, 7):
        out = _outcome(find_head_end, data[:i], 0, LIMITS)
        if out[0] == "err" or out[1] != -1:  # type: ignore[index]
            return out
    return _outcome(find_head_end, data, 0, LIMITS)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    split = data[0]
    data = data[1:]
    whole = _outcome(find_head_end, data, 0, LIMITS)
    if whole[0] == "ok" and whole[1] == -1:  # type: ignore[index]
        return
    stepped = _find_incrementally(data)
    if whole[0] == "ok" and stepped[0] == "ok":  # type: ignore[index]
        assert whole == stepped, (whole, stepped)
    if whole[0] == "err":  # type: ignore[index]
        return
    end = whole[1]  # type: ignore[index]
    res = _outcome(parse_head, data[:end], LIMITS)
    if res[0] != "ok":  # type: ignore[index]
        return
    req = res[1]  # type: ignore[index]
    assert not (req.chunked and req.content_length is not None)
    if req.content_length is not None:
        assert 0 <= req.content_length <= LIMITS.max_body
    if not req.chunked:
        return
    rest = data[end:]
    cut = split % (len(rest) + 1)
    dec = ChunkedDecoder(LIMITS)
    total = 0
    try:
        for piece in (rest[:cut], rest[cut:]):
            total += sum(len(p) for p in dec.feed(piece))
            if dec.done:
                break
    except HTTPError as err:
        assert err.status in CLIENT_ERRORS, (err.status, err)
        return
    assert total <= LIMITS.max_body


SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e=v\r\nabc\r\n0\r\nT: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
]


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
