"""minihttp.headers.Headers against the email.message.Message surface http.server users rely on."""

from __future__ import annotations

import email.message
import http.client
import io

import pytest

import minihttp.headers as headers_mod
from minihttp.headers import Headers

FIELDS = [
    ("Host", "example.com"),
    ("Content-Type", 'Text/HTML; Charset="UTF-8"; q=x; flag; x="a;b\\"c"'),
    ("X-Dup", "1"),
    ("x-dup", "2"),
    ("Accept", "*/*"),
]


def message(fields: list[tuple[str, str]]) -> email.message.Message:
    raw = "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
    return http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))


def test_matches_message_surface() -> None:
    ours, theirs = Headers(FIELDS), message(FIELDS)
    for name in ("host", "HOST", "x-dup", "X-DUP", "missing", "content-type"):
        assert ours[name] == theirs[name]
        assert ours.get(name) == theirs.get(name)
        assert ours.get(name, "d") == theirs.get(name, "d")
        assert ours.get_all(name) == theirs.get_all(name)
        assert (name in ours) == (name in theirs)
    assert len(ours) == len(theirs)
    assert list(ours) == list(theirs)
    assert ours.keys() == theirs.keys()
    assert ours.values() == theirs.values()
    assert ours.items() == theirs.items()
    assert ours.get_content_type() == theirs.get_content_type() == "text/html"
    assert ours.get_content_maintype() == theirs.get_content_maintype()
    assert ours.get_content_subtype() == theirs.get_content_subtype()
    assert ours.get_content_charset() == theirs.get_content_charset() == "utf-8"
    for param in ("charset", "q", "flag", "x", "nope"):
        assert ours.get_param(param) == theirs.get_param(param), param
    assert str(ours) == ours.as_string() == theirs.as_string()


@pytest.mark.parametrize("ctype", [None, "", "text", "a/b/c", "application/JSON;x=1"])
def test_content_type_defaults_like_message(ctype: str | None) -> None:
    fields = [] if ctype is None else [("Content-Type", ctype)]
    assert Headers(fields).get_content_type() == message(fields).get_content_type()
    assert Headers(fields).get_content_charset() == message(fields).get_content_charset()
    assert Headers(fields).get_param("x") == message(fields).get_param("x")


def test_setitem_appends_and_delitem_removes_all() -> None:
    h, m = Headers(FIELDS), message(FIELDS)
    for target in (h, m):
        target["X-DUP"] = "3"
        target["New"] = "n"
    assert h.get_all("x-dup") == m.get_all("x-dup") == ["1", "2", "3"]
    assert h.items() == m.items()
    del h["X-Dup"]
    del m["X-Dup"]
    assert h.items() == m.items()
    assert "x-dup" not in h and h["x-dup"] is None and h.get_all("x-dup") is None
    del h["never-there"]  # no KeyError, as Message
    assert len(h) == 4


def test_replace_and_add_header_and_copy() -> None:
    h = Headers(FIELDS)
    h.replace_header("X-DUP", "one")
    assert h.get_all("x-dup") == ["one", "2"]
    assert h.items()[2] == ("X-Dup", "one")
    with pytest.raises(KeyError):
        h.replace_header("absent", "x")
    h.add_header("Content-Disposition", "attachment", filename="a b.txt")
    assert h["content-disposition"] == 'attachment; filename="a b.txt"'
    c = h.copy()
    c["Extra"] = "1"
    assert "Extra" in c and "Extra" not in h
    assert c != h and Headers(FIELDS) == Headers(FIELDS)


def test_non_string_membership_and_repr() -> None:
    h = Headers([("A", "1")])
    assert 1 not in h
    assert repr(h) == "Headers([('A', '1')])"
    assert Headers().as_string() == "\n"


def test_all_lists_public_names() -> None:
    assert headers_mod.__all__ == ["Headers"]


def _parsed(fields: list[tuple[str, str]]) -> Headers:
    """Headers as the parser makes them: over the raw field block, split on first use."""
    from minihttp.http11 import parse_head

    raw = "".join(f"{n}:  {v} \t\r\n" for n, v in fields)  # OWS on both sides, trimmed
    return parse_head(("GET / HTTP/1.0\r\n" + raw + "\r\n").encode("latin-1")).headers


FIRST_USES = {
    "getitem": lambda h: h["x-dup"],
    "get": lambda h: h.get("HOST"),
    "get_all": lambda h: h.get_all("X-Dup"),
    "contains": lambda h: ("accept" in h, "nope" in h),
    "len": len,
    "iter": list,
    "keys": lambda h: h.keys(),
    "values": lambda h: h.values(),
    "items": lambda h: h.items(),
    "setitem": lambda h: (h.__setitem__("x-dup", "3"), h.items(), h.get_all("x-dup")),
    "delitem": lambda h: (h.__delitem__("X-DUP"), h.items(), h["x-dup"]),
    "replace": lambda h: (h.replace_header("x-dup", "r"), h.items(), h.get_all("x-dup")),
    "copy": lambda h: h.copy().items(),
    "eq": lambda h: h == Headers(FIELDS),
    "str": str,
    "repr": repr,
    "content_type": lambda h: (h.get_content_type(), h.get_content_charset()),
    "index": lambda h: sorted(h._index),
}


@pytest.mark.parametrize("use", sorted(FIRST_USES))
def test_parsed_headers_behave_as_built_ones_whatever_is_used_first(use: str) -> None:
    """The parser's Headers split their block lazily; any first use must see every field."""
    parsed, built = _parsed(FIELDS), Headers(FIELDS)
    assert FIRST_USES[use](parsed) == FIRST_USES[use](built)
    assert parsed == built and parsed.items() == built.items()


def test_parsed_headers_without_fields() -> None:
    h = _parsed([])
    assert len(h) == 0 and h.items() == [] and h["host"] is None and h.as_string() == "\n"


HAS_ANY_NAMES = frozenset({"range", "if-none-match"})


@pytest.mark.parametrize("block, expected", [
    ("Host: a\r\nRange: bytes=0-1\r\n", True),
    ("RANGE: bytes=0-1\r\nHost: a\r\n", True),  # the first field, any case
    ("Host: a\r\nIf-None-Match: \"x\"\r\n", True),
    ("Host: a\r\nX-Range: bytes=0-1\r\n", False),  # a longer name ending in "range"
    ("Host: a\r\nRanges: 1\r\n", False),  # a longer name starting with "range"
    ("Host: a\r\nX-Note: range: bytes=0-1\r\n", False),  # the name inside a value
    ("", False),
])
def test_has_any_lazy_and_built_agree(block: str, expected: bool) -> None:
    lazy = headers_mod._from_block(block)
    assert lazy.has_any(HAS_ANY_NAMES) is expected
    assert lazy._items is None  # answered from the block, nothing split
    built = headers_mod._from_block(block)
    list(built.items())  # force the split
    assert built.has_any(HAS_ANY_NAMES) is expected
    eager = Headers(headers_mod._LINES.findall(block))
    assert eager.has_any(HAS_ANY_NAMES) is expected


def test_field_block_only_while_the_fields_are_as_parsed() -> None:
    from minihttp.http11 import parse_head

    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"
    assert parse_head(head).headers.field_block() == "Host: a\r\nX-A: 1\r\n"
    read = parse_head(head).headers
    assert read["x-a"] == "1" and read.field_block() is None  # split: may be changed now
    changed = parse_head(head).headers
    changed["X-B"] = "2"
    assert changed.field_block() is None and changed["x-b"] == "2"
    assert Headers([("Host", "a")]).field_block() is None  # never a parsed block
