"""Unit tests of the checks on what an application hands ``start_response``."""

from __future__ import annotations

from typing import Any

import pytest

from minihttp.wsgi.response import HOP_BY_HOP, check_headers, parse_status


@pytest.mark.parametrize(("status", "expected"), [
    ("200 OK", (200, None)),
    ("404 Not Found", (404, None)),
    ("200 Fine", (200, "Fine")),
    ("299 ", (299, "")),
    ("599 Whatever it is", (599, "Whatever it is")),
])
def test_good_statuses(status: str, expected: tuple[int, str | None]) -> None:
    assert parse_status(status) == expected
    assert parse_status(status) == expected  # memoized: same answer


@pytest.mark.parametrize("status", ["200", "OK", "20 OK", "2000 OK", "abc OK", "100 Continue",
                                    "199 Early", "600 Big", "200 OK\r\nX: y", "200 O\nK",
                                    "200 \u20ac", "\u0662\u0660\u0660 OK"])
def test_bad_statuses(status: str) -> None:
    with pytest.raises(ValueError):
        parse_status(status)


def test_status_must_be_str() -> None:
    with pytest.raises(TypeError):
        parse_status(b"200 OK")


def test_headers_checked() -> None:
    head = check_headers("200 OK", [("Content-Type", "text/plain"), ("Content-Length", " 12 "),
                                    ("server", "x")])
    assert head.code == 200 and head.length == "12"
    assert head.has_server and not head.has_date
    assert head.headers == [("Content-Type", "text/plain"), ("Content-Length", " 12 "),
                            ("server", "x")]


@pytest.mark.parametrize("name", [*sorted(HOP_BY_HOP), "CONNECTION", "Transfer-Encoding"])
def test_hop_by_hop_refused(name: str) -> None:
    with pytest.raises(ValueError, match="hop-by-hop"):
        check_headers("200 OK", [(name, "x")])


@pytest.mark.parametrize("headers", [
    (("A", "b"),),                       # not a list
    [["A", "b"]],                        # not a tuple
    [("A", "b", "c")],                   # not a pair
    [(b"A", "b")],                       # bytes name
    [("A", b"b")],                       # bytes value
    [("A", 1)],                          # int value
])
def test_header_types(headers: Any) -> None:
    with pytest.raises(TypeError):
        check_headers("200 OK", headers)


@pytest.mark.parametrize("value", ["", "-1", "1x", "\u0661", "1,2"])
def test_bad_content_length(value: str) -> None:
    with pytest.raises(ValueError):
        check_headers("200 OK", [("Content-Length", value)])


def test_repeated_content_length() -> None:
    with pytest.raises(ValueError):
        check_headers("200 OK", [("Content-Length", "1"), ("content-length", "1")])
