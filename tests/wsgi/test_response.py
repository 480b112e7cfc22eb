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


@pytest.mark.parametrize("item", [("X-A", "a\r\nSet-Cookie: x=1"), ("X-A", "a\nb"),
                                  ("X-A", "a\rb"), ("X-A", "a\x00b"), ("Bad Name", "v"),
                                  ("X:Y", "v"), ("", "v"), ("X-A", "\u20ac")])
def test_field_syntax_checked_at_start_response(item: tuple[str, str]) -> None:
    """PEP 3333: errors in the headers are raised by start_response, while the application
    still runs; the fields then go on the wire as they are (never through another check)."""
    for _ in range(2):  # and a refused list is never remembered
        with pytest.raises(ValueError):
            check_headers("200 OK", [("Content-Type", "text/plain"), item])


def test_fields_as_sent_in_the_applications_order() -> None:
    head = check_headers("200 OK", [("A", "1"), ("Content-Length", " 3 "), ("b-x", "2"),
                                    ("C", "")])
    assert (head.before, head.length, head.after) == (b"A: 1\r\n", "3", b"b-x: 2\r\nC: \r\n")
    head = check_headers("201 Created", [("A", "1")])
    assert (head.code, head.before, head.length, head.after) == (201, b"A: 1\r\n", None, b"")
    head = check_headers("200 OK", [])
    assert (head.before, head.length, head.after) == (b"", None, b"")


def test_a_remembered_list_the_application_changes_is_checked_again() -> None:
    """A head is remembered with a copy of its list: an application that reuses its list
    object and changes it gets the new list checked, not the old answer."""
    headers = [("Content-Type", "text/plain")]
    for _ in range(2):
        assert check_headers("200 OK", headers).before == b"Content-Type: text/plain\r\n"
    headers.append(("Connection", "close"))
    with pytest.raises(ValueError, match="hop-by-hop"):
        check_headers("200 OK", headers)
    headers[1] = ("X-B", "1")
    assert check_headers("200 OK", headers).before == b"Content-Type: text/plain\r\nX-B: 1\r\n"
    assert check_headers("200 OK", headers[:1]).before == b"Content-Type: text/plain\r\n"


def test_heads_found_again_keep_their_own_status() -> None:
    fields = [("Content-Type", "text/plain")]
    for _ in range(2):
        assert check_headers("200 OK", list(fields)).code == 200
        assert check_headers("404 Not Found", list(fields)).code == 404
        assert check_headers("404 Gone Away", list(fields))[:2] == (404, "Gone Away")


class ListLike(list):  # type: ignore[type-arg]
    """Not a list for PEP 3333 ("a Python list"), however equal."""


def test_not_a_list_is_refused_even_after_an_equal_list() -> None:
    for _ in range(2):
        check_headers("200 OK", [("A", "1")])
    for other in ((("A", "1"),), ListLike([("A", "1")])):
        with pytest.raises(TypeError):
            check_headers("200 OK", other)
