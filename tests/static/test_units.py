"""Unit tests of the pure helpers behind the static handler (no sockets)."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minihttp.errors import BadRequest, HTTPError
from minihttp.static import SimpleHTTPRequestHandler
from minihttp.static import conditional as cond
from minihttp.static.encoding import choose_encoding
from minihttp.static.listing import Entry, render_listing, scan_directory
from minihttp.static.paths import (
    NotFound,
    _translate_general,
    contained,
    redirect_location,
    split_target,
    translate,
    url_segments,
)
from minihttp.static.ranges import MAX_RANGES, multipart_layout, parse_range

# -- ranges (RFC 9110 section 14) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "ranges"),
    [
        (None, 200, ()),
        ("bytes=0-99", 206, ((0, 99),)),
        ("bytes=100-", 206, ((100, 999),)),
        ("bytes=-100", 206, ((900, 999),)),
        ("bytes=-5000", 206, ((0, 999),)),
        ("bytes=990-5000", 206, ((990, 999),)),
        ("BYTES = 0-0", 206, ((0, 0),)),
        ("bytes=0-1, 5-6", 206, ((0, 1), (5, 6))),
        ("bytes=0-1,,5-6,", 206, ((0, 1), (5, 6))),  # empty list elements ignored
        ("bytes=5-6,0-1", 206, ((0, 1), (5, 6))),  # unordered: coalesced in order
        ("bytes=0-10,5-20", 206, ((0, 20),)),  # overlapping: merged
        ("bytes=0-9,10-19", 206, ((0, 19),)),  # adjacent: merged
        ("bytes=0-1,2000-3000", 206, ((0, 1),)),  # unsatisfiable members dropped
        ("bytes=1000-", 416, ()),
        ("bytes=-0", 416, ()),
        ("bytes=5000-6000", 416, ()),
        ("items=0-1", 200, ()),  # unknown unit: ignored
        ("bytes=1-0", 200, ()),  # last < first: invalid, ignored
        ("bytes=a-b", 200, ()),
        ("bytes=--1", 200, ()),
        ("bytes=0-1;x", 200, ()),
        ("bytes=", 200, ()),
        ("bytes 0-1", 200, ()),
        ("bytes=+1-2", 200, ()),
        ("bytes=" + "9" * 40 + "-", 200, ()),
        ("bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1)), 200, ()),
    ],
)
def test_parse_range(value: str | None, status: int, ranges: tuple[tuple[int, int], ...]) -> None:
    decision = parse_range(value, 1000)
    assert decision.status == status
    assert decision.ranges == ranges


def test_range_of_empty_representation_is_unsatisfiable() -> None:
    assert parse_range("bytes=0-", 0).status == 416
    assert parse_range("bytes=-5", 0).status == 416


def test_many_ranges_within_cap_are_kept() -> None:
    value = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES))
    assert len(parse_range(value, 1000).ranges) == MAX_RANGES


def test_multipart_layout_length_matches_bytes() -> None:
    data = bytes(range(256)) * 4
    pieces, total = multipart_layout(((0, 9), (100, 199)), len(data), "text/plain", "B0UND")
    body = b"".join(p if isinstance(p, bytes) else data[p[0] : p[0] + p[1]] for p in pieces)
    assert len(body) == total
    assert body.startswith(b"--B0UND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/1024")
    assert body.endswith(b"\r\n--B0UND--\r\n")
    assert data[100:200] in body


# -- validators and preconditions (RFC 9110 section 13) ----------------------------------------

V = cond.Validators('"abc"', 1_000_000_000)
DATE_EQ = cond.http_date(1_000_000_000)
DATE_BEFORE = cond.http_date(999_999_000)
DATE_AFTER = cond.http_date(1_000_001_000)


def _get_all(fields: dict[str, str]) -> Any:
    lowered = {k.lower(): v for k, v in fields.items()}
    return lambda name: [lowered[name.lower()]] if name.lower() in lowered else None


@pytest.mark.parametrize(
    ("method", "fields", "expected"),
    [
        ("GET", {}, None),
        ("GET", {"If-None-Match": '"abc"'}, 304),
        ("GET", {"If-None-Match": 'W/"abc"'}, 304),  # weak comparison
        ("GET", {"If-None-Match": '"x", "abc"'}, 304),
        ("GET", {"If-None-Match": "*"}, 304),
        ("GET", {"If-None-Match": '"other"'}, None),
        ("HEAD", {"If-None-Match": '"abc"'}, 304),
        ("POST", {"If-None-Match": '"abc"'}, 412),
        ("GET", {"If-Modified-Since": DATE_EQ}, 304),
        ("GET", {"If-Modified-Since": DATE_AFTER}, 304),
        ("GET", {"If-Modified-Since": DATE_BEFORE}, None),
        ("GET", {"If-Modified-Since": "not a date"}, None),
        ("POST", {"If-Modified-Since": DATE_EQ}, None),
        # If-None-Match wins over If-Modified-Since (step 3 before step 4)
        ("GET", {"If-None-Match": '"other"', "If-Modified-Since": DATE_AFTER}, None),
        ("GET", {"If-Match": '"abc"'}, None),
        ("GET", {"If-Match": "*"}, None),
        ("GET", {"If-Match": 'W/"abc"'}, 412),  # strong comparison
        ("GET", {"If-Match": '"other"'}, 412),
        ("GET", {"If-Unmodified-Since": DATE_BEFORE}, 412),
        ("GET", {"If-Unmodified-Since": DATE_EQ}, None),
        ("GET", {"If-Unmodified-Since": "garbage"}, None),
        # If-Match present: If-Unmodified-Since is not evaluated (step 2)
        ("GET", {"If-Match": '"abc"', "If-Unmodified-Since": DATE_BEFORE}, None),
        # 412 from step 1 comes before 304 from step 3
        ("GET", {"If-Match": '"zzz"', "If-None-Match": '"abc"'}, 412),
    ],
)
def test_evaluate(method: str, fields: dict[str, str], expected: int | None) -> None:
    assert cond.evaluate(method, _get_all(fields), V) == expected


def test_if_range() -> None:
    assert cond.if_range_matches(None, V)
    assert cond.if_range_matches('"abc"', V)
    assert not cond.if_range_matches('W/"abc"', V)
    assert not cond.if_range_matches('"zzz"', V)
    assert cond.if_range_matches(DATE_EQ, V)
    assert not cond.if_range_matches(DATE_AFTER, V)
    assert not cond.if_range_matches("junk", V)


def test_parse_http_date_formats() -> None:
    assert cond.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert cond.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert cond.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994") is None
    assert cond.parse_http_date("") is None
    assert cond.parse_http_date("99999999999999999999") is None


def test_etag_changes_with_content(tmp_path: Any) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"one")
    first = cond.validators_for(os.stat(p))
    p.write_bytes(b"three")
    second = cond.validators_for(os.stat(p))
    assert first.etag != second.etag
    assert re.fullmatch(r'"[0-9a-f-]+"', first.etag)
    assert cond.validators_for(os.stat(p), "br").etag != second.etag


# -- Accept-Encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, None),
        ("", None),
        ("gzip", "gzip"),
        ("gzip, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0", None),
        ("*", "br"),
        ("*;q=0", None),
        ("*, br;q=0", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP;Q=1.0", "gzip"),
        ("gzip;q=0.5, identity", None),  # identity preferred
        ("gzip;q=2", None),  # invalid q: element skipped
        ("deflate", None),
    ],
)
def test_choose_encoding(accept: str | None, expected: str | None) -> None:
    assert choose_encoding(accept, ["br", "gzip"]) == expected


def test_choose_encoding_only_existing() -> None:
    assert choose_encoding("br, gzip", ["gzip"]) == "gzip"
    assert choose_encoding("br", []) is None


# -- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a/b?x=1#f", ("/a/b", "x=1")),
        ("/a#f?x", ("/a", "")),
        ("http://host:8/a/b?q", ("/a/b", "q")),
    ],
)
def test_split_target(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected


def test_split_target_refuses_asterisk() -> None:
    with pytest.raises(NotFound):
        split_target("*")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", []),
        ("/a//b/./c", ["a", "b", "c"]),
        ("/a%20b/%E2%82%AC", ["a b", "\u20ac"]),
        ("/%252e%252e/x", ["%2e%2e", "x"]),  # decoded exactly once
        ("/%ff", ["\udcff"]),  # undecodable bytes kept as surrogates
    ],
)
def test_url_segments(raw: str, expected: list[str]) -> None:
    assert url_segments(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["/..", "/../etc/passwd", "/%2e%2e/x", "/%2E%2E%2Fx", "/a/..%2f..%2fx", "/..%5cx",
     "/a\\..\\..\\x", "/%2e%2e%5c"],
)
def test_url_segments_refuses_traversal(raw: str) -> None:
    with pytest.raises(NotFound):
        url_segments(raw)


def test_url_segments_nul_is_bad_request() -> None:
    with pytest.raises(BadRequest) as info:
        url_segments("/a%00b")
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("raw", "query", "expected"),
    [
        ("/dir", "", "/dir/"),
        ("/dir", "a=1&b", "/dir/?a=1&b"),
        ("//evil.com/dir", "", "/evil.com/dir/"),
        ("/\\evil.com", "", "/evil.com/"),
        ("/\\/\\evil.com", "", "/evil.com/"),
    ],
)
def test_redirect_location_never_scheme_relative(raw: str, query: str, expected: str) -> None:
    location = redirect_location(raw, query)
    assert location == expected
    assert not location.startswith(("//", "/\\"))


def test_contained(tmp_path: Any) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "out")
    os.symlink(root / "sub", root / "in")
    assert contained(str(root / "sub"), str(root))
    assert contained(str(root / "in"), str(root))
    assert not contained(str(root / "out"), str(root))
    assert not contained(str(tmp_path), str(root))


# -- listing ----------------------------------------------------------------------------------


def test_render_listing_escapes_and_orders() -> None:
    entries = [
        Entry("<script>alert(1)</script>.txt", False, 12, time.time()),
        Entry("a dir", True, None, 0.0),
        Entry('q"uote&#?.txt', False, 2048, 0.0),
        Entry("bad\udcff", False, 1, None),
    ]
    page = render_listing("/x y/<b>/", entries, parent=True).decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "<title>Index of /x y/&lt;b&gt;/</title>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.txt" in page
    assert 'href="%3Cscript%3Ealert%281%29%3C%2Fscript%3E.txt"' in page
    assert 'href="q%22uote%26%23%3F.txt"' in page
    assert 'href="a%20dir/"' in page
    assert 'href="bad%FF"' in page and "bad\ufffd" in page
    assert 'href="../"' in page
    assert "2.0 KiB" in page


def test_scan_directory_sorts_dirs_first_and_hides(tmp_path: Any) -> None:
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "A.txt").write_text("a")
    (tmp_path / "zdir").mkdir()
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    entries = scan_directory(str(tmp_path), lambda de: de.name != "b.txt")
    assert [e.name for e in entries] == ["zdir", "A.txt", "dangling"]
    assert entries[-1].size is None



# -- properties (hypothesis) ----------------------------------------------------------------------

_PATH_ALPHABET = st.sampled_from(
    ["/", ".", "..", "\\", "%", "2e", "2E", "2f", "5c", "25", "00", "a", "C:", "?", "#", "~",
     "\u00e9", "%ff"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PATH_ALPHABET, max_size=12).map("".join))
def test_translate_path_never_leaves_root(tail: str) -> None:
    handler = SimpleHTTPRequestHandler.__new__(SimpleHTTPRequestHandler)
    handler.directory = "/srv/root"
    try:
        result = handler.translate_path("/" + tail)
    except HTTPError as exc:
        assert exc.status in (400, 404)
        return
    normalized = os.path.normpath(result)
    assert os.path.commonpath([normalized, "/srv/root"]) == "/srv/root"


def _general_or_error(root: str, target: str) -> str | int:
    try:
        return _translate_general(root, target)
    except HTTPError as exc:
        return exc.status


def _translate_or_error(root: str, target: str) -> str | int:
    try:
        return translate(root, target)
    except HTTPError as exc:
        return exc.status


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["/srv/root", "/srv/root/", "/", "", "rel"]),
       st.lists(_PATH_ALPHABET | st.sampled_from(["b", ".x", "%2e", "?q", "//", "a.b"]),
                max_size=12).map("".join),
       st.booleans())
def test_translate_fast_path_agrees_with_general_rule(root: str, tail: str, slash: bool) -> None:
    # The plain-path shortcut of translate() must give exactly what decoding and splitting give.
    target = ("/" if slash else "") + tail
    assert _translate_or_error(root, target) == _general_or_error(root, target)


@pytest.mark.parametrize(
    ("root", "target", "expected"),
    [
        ("/srv/root", "/", "/srv/root/"),
        ("/srv/root", "/a/b.txt", "/srv/root/a/b.txt"),
        ("/srv/root/", "/a/", "/srv/root/a/"),
        ("/", "/a", "/a"),
        ("", "/a", "a"),
        ("/srv/root", "/a/./b", "/srv/root/a/b"),
        ("/srv/root", "/a//b?x=1#f", "/srv/root/a/b"),
        ("/srv/root", "/.well-known/x", "/srv/root/.well-known/x"),
    ],
)
def test_translate_examples(root: str, target: str, expected: str) -> None:
    assert translate(root, target) == expected


@pytest.mark.parametrize("target", ["/..", "/a/../../b", "/%2e%2e/x", "/a\\..\\..\\b", "/..%5cb"])
def test_translate_refuses_traversal(target: str) -> None:
    with pytest.raises(NotFound):
        translate("/srv/root", target)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="bytes=0123456789-, \t;x", max_size=40), st.integers(0, 10_000))
def test_parse_range_is_total_and_clean(value: str, length: int) -> None:
    decision = parse_range(value, length)
    assert decision.status in (200, 206, 416)
    previous_last = -2
    for first, last in decision.ranges:
        assert 0 <= first <= last < length
        assert first > previous_last + 1  # ascending, no overlap, no adjacency
        previous_last = last


@pytest.mark.parametrize(
    "module",
    ["minihttp.static.handler", "minihttp.cli", "minihttp.static.ranges", "minihttp.static.conditional",
     "minihttp.static.paths", "minihttp.static.encoding", "minihttp.static.listing", "minihttp.static.cache",
     "minihttp.static.cors", "minihttp.static.site", "minihttp.static.types"],
)
def test_all_lists_public_names(module: str) -> None:
    import importlib
    import inspect

    mod = importlib.import_module(module)
    defined = {name for name, value in vars(mod).items()
               if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
               and value.__module__ == module}
    assert defined <= set(mod.__all__)
    assert all(hasattr(mod, name) for name in mod.__all__)
