"""The streaming multipart/form-data parser: vectors replayed whole, byte by byte and in
random splits, hostile bodies, and hypothesis round trips."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minihttp.static.multipart import (
    PART_END,
    MultipartError,
    MultipartParser,
    Part,
    UnsupportedMediaType,
    boundary_from_content_type,
    parse_parameters,
)

B = b"----formdata-minihttp-7MA4YWxkTrZu0gW"


def encode(parts: list[tuple[str, str | None, bytes]], boundary: bytes = B,
           preamble: bytes = b"", epilogue: bytes = b"\r\n") -> bytes:
    """A body as browsers send it: (name, filename, content) per part."""
    out = [preamble]
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(b"--" + boundary + b"\r\nContent-Disposition: " + disposition.encode()
                   + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    out.append(b"--" + boundary + b"--" + epilogue)
    return b"".join(out)


def parse(body: bytes, splits: list[int] | None = None, boundary: bytes = B,
          **limits: int) -> list[tuple[str, str | None, bytes]]:
    """Feed ``body`` cut at ``splits``; the parts it gives, content joined."""
    parser = MultipartParser(boundary, **limits)
    cuts = [0, *sorted(splits or []), len(body)]
    result: list[tuple[str, str | None, bytes]] = []
    current: list[bytes] | None = None
    head: Part | None = None
    for a, b in itertools.pairwise(cuts):
        for event in parser.feed(body[a:b]):
            if isinstance(event, Part):
                assert current is None, "a part began inside another"
                head, current = event, []
            elif isinstance(event, bytes):
                assert current is not None and event, "content outside a part, or empty"
                current.append(event)
            else:
                assert event is PART_END and current is not None and head is not None
                result.append((head.name, head.filename, b"".join(current)))
                current = None
    parser.close()
    assert current is None
    return result


def every_split(body: bytes, **limits: int) -> list[tuple[str, str | None, bytes]]:
    """Parse whole, byte by byte and in 20 random splits; all must agree."""
    whole = parse(body, **limits)
    assert parse(body, list(range(1, len(body))), **limits) == whole
    rng = random.Random(len(body))
    for _ in range(20):
        cuts = rng.sample(range(1, max(2, len(body))), min(len(body) - 1, rng.randint(1, 6)))
        assert parse(body, cuts, **limits) == whole
    return whole


def fails(body: bytes, splits: list[int] | None = None, **limits: int) -> str:
    with pytest.raises(MultipartError) as info:
        parse(body, splits, **limits)
    assert info.value.status == 400
    return info.value.message


# -- well-formed bodies --------------------------------------------------------------------


def test_two_files_and_a_field_in_every_split() -> None:
    parts = [("file", "a.txt", b"hello\r\nworld\r\n"), ("note", None, b"just text"),
             ("file", "b.bin", bytes(range(256)) * 4)]
    assert every_split(encode(parts)) == parts


def test_content_with_boundary_lookalikes_is_content() -> None:
    # CR, LF, "--" and most of the delimiter, but never all of it.
    tricky = b"\r\n--" + B[:-1] + b"\r\r\n-\r\n--\n--" + B + b"\n"
    parts = [("file", "t", tricky), ("file", "u", b"\r"), ("file", "v", b"")]
    assert every_split(encode(parts)) == parts


def test_preamble_epilogue_and_transport_padding() -> None:
    body = (b"ignored preamble\r\n--" + B + b" \t\r\nContent-Disposition: form-data; name=x"
            b"\r\n\r\nv\r\n--" + B + b"--\r\nthe epilogue, ignored: --" + B + b"\r\nxx")
    assert every_split(body) == [("x", None, b"v")]


def test_filename_forms() -> None:
    def name_of(disposition: str) -> str | None:
        body = (b"--" + B + b"\r\nContent-Disposition: " + disposition.encode() +
                b"\r\n\r\n\r\n--" + B + b"--")
        return parse(body)[0][1]

    assert name_of('form-data; name="f"; filename="r\u00e9sum\u00e9 1.pdf"') == "r\u00e9sum\u00e9 1.pdf"
    assert name_of("form-data; name=f; filename*=UTF-8''%E2%82%AC%20rates.txt") == "\u20ac rates.txt"
    assert name_of("form-data; name=f; filename*=iso-8859-1'en'%A3.txt") == "\u00a3.txt"
    # filename* wins over filename (RFC 8187 section 4.2 / RFC 6266 section 4.3)
    assert name_of("form-data; name=f; filename=\"x\"; filename*=UTF-8''y") == "y"
    assert name_of('form-data; name="f"; filename="a\\"b"') == 'a"b'
    assert name_of('form-data; name="f"; filename="C:\\dir\\x"') == "C:\\dir\\x"
    assert name_of('FORM-DATA ; Name="f" ; FileName=""') == ""
    assert name_of('form-data; name="f"') is None


def test_content_type_boundaries() -> None:
    assert boundary_from_content_type(
        "multipart/form-data; boundary=----WebKitFormBoundaryx7") == b"----WebKitFormBoundaryx7"
    assert boundary_from_content_type('Multipart/Form-Data; charset=utf-8; boundary="a b:c?"') == b"a b:c?"
    assert boundary_from_content_type("multipart/form-data; boundary=" + "x" * 70) == b"x" * 70
    for bad in ("multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; "
                "boundary=" + "x" * 71, 'multipart/form-data; boundary="ends in space "',
                "multipart/form-data; boundary=a; boundary=b", 'multipart/form-data; boundary="a\\x"',
                "multipart/form-data; boundary=a\u00e9"):
        with pytest.raises(MultipartError):
            boundary_from_content_type(bad)
    for other in (None, "", "text/plain", "application/x-www-form-urlencoded",
                  "multipart/mixed; boundary=x", "/form-data"):
        with pytest.raises(UnsupportedMediaType) as info:
            boundary_from_content_type(other)
        assert info.value.status == 415


def test_parameters() -> None:
    assert parse_parameters('form-data; name="a;b"; x=1;') == ("form-data", {"name": "a;b", "x": "1"})
    for bad in ('form-data; name="open', "form-data; name", "form-data name=x", "; x=1",
                "form-data; name=", "form-data; a=1; A=2"):
        with pytest.raises(MultipartError):
            parse_parameters(bad)


# -- hostile bodies ------------------------------------------------------------------------


def test_no_final_boundary_is_400_in_every_state() -> None:
    body = encode([("file", "a", b"data" * 100)])
    final = body.index(b"--" + B + b"--")
    for end in (0, 10, len(B) + 4, 60, body.index(b"\r\n\r\n") + 2, final - 3, final,
                final + len(B) + 2, final + len(B) + 3):
        fails(body[:end])
        fails(body[:end], list(range(1, end)))


def test_crlf_variants() -> None:
    lf_only = encode([("file", "a", b"x")]).replace(b"\r\n", b"\n")
    assert "CRLF" in fails(lf_only)
    assert "final boundary" in fails(b"preamble\n" + lf_only)  # no CRLF delimiter ever
    bare_lf_after_delimiter = b"--" + B + b"\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--" + B + b"--"
    assert "CRLF" in fails(bare_lf_after_delimiter)
    lf_in_head = b"--" + B + b"\r\nContent-Disposition: form-data; name=a\nX: y\r\n\r\nx\r\n--" + B + b"--"
    assert "control" in fails(lf_in_head)
    cr_in_head = lf_in_head.replace(b"a\nX", b"a\rX")
    assert "control" in fails(cr_in_head)
    # content may end with bare LF / CR before the delimiter: they are content
    assert parse(encode([("a", None, b"x\n")])) == [("a", None, b"x\n")]


def test_huge_part_head_is_refused_early() -> None:
    head = b"--" + B + b"\r\nContent-Disposition: form-data; name=a\r\nX-Pad: " + b"p" * 100_000
    parser = MultipartParser(B, max_header_size=16 * 1024)
    with pytest.raises(MultipartError, match="head too large"):
        for i in range(0, len(head), 1000):  # refused long before the 100 KB are fed
            parser.feed(head[i:i + 1000])
            assert i < 20_000


def test_malformed_heads() -> None:
    def body(head: bytes) -> bytes:
        return b"--" + B + b"\r\n" + head + b"\r\n\r\nx\r\n--" + B + b"--"

    assert "Content-Disposition" in fails(b"--" + B + b"\r\n\r\nx\r\n--" + B + b"--")
    assert "Content-Disposition" in fails(body(b"Content-Type: text/plain"))
    assert "Content-Disposition" in fails(body(b"Content-Disposition: form-data; name=a\r\n"
                                               b"Content-Disposition: form-data; name=b"))
    assert "form-data" in fails(body(b"Content-Disposition: attachment; name=a"))
    assert "form-data" in fails(body(b"Content-Disposition: form-data; filename=a"))
    assert "folded" in fails(body(b"Content-Disposition: form-data;\r\n name=a"))
    assert "malformed field" in fails(body(b"Content-Disposition form-data; name=a"))
    assert "malformed field" in fails(body(b"Bad Name: x\r\nContent-Disposition: form-data; name=a"))
    assert "control" in fails(body(b"Content-Disposition: form-data; name=\"a\x00\""))
    assert "UTF-8" in fails(body(b"Content-Disposition: form-data; name=a; filename=\"\xff\""))
    assert "filename*" in fails(body(b"Content-Disposition: form-data; name=a; filename*=ascii''x"))
    assert "filename*" in fails(body(b"Content-Disposition: form-data; name=a; filename*=UTF-8''%ff"))
    assert "too many fields" in fails(body(b"Content-Disposition: form-data; name=a"
                                           + b"\r\nX: y" * 16))


def test_garbage_after_a_delimiter() -> None:
    # The boundary as a prefix of a longer line inside content is a broken body (RFC 2046
    # section 5.1.1: the sender must choose a boundary that does not occur).
    body = encode([("a", None, b"x\r\n--" + B + b"-and-more\r\nstuff")])
    assert "followed by CRLF" in fails(body)
    assert "followed by CRLF" in fails(b"--" + B + b" " * 300)


def test_limits_on_parts_and_preamble() -> None:
    many = encode([("a", None, b"")] * 11)
    assert "too many parts" in fails(many, max_parts=10)
    assert every_split(many, max_parts=11) == [("a", None, b"")] * 11
    assert "no multipart boundary" in fails(b"x" * 70_000, max_preamble=64 * 1024)


def test_content_streams_with_a_small_holdback() -> None:
    """A 1 MiB part fed in 64 KiB pieces comes out as it is fed: never held whole."""
    parser = MultipartParser(B)
    parser.feed(b"--" + B + b"\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n")
    piece = b"\r\n-" + b"z" * (64 * 1024 - 3)
    fed = out = 0
    for _ in range(16):
        fed += len(piece)
        out += sum(len(e) for e in parser.feed(piece) if isinstance(e, bytes))
        assert fed - out < len(B) + 4
    events = parser.feed(b"\r\n--" + B + b"--\r\n")
    assert events[-1] is PART_END
    parser.close()


# -- hypothesis ----------------------------------------------------------------------------

_names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
                 max_size=20)


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.tuples(_names, st.one_of(st.none(), _names),
                                st.binary(max_size=300)), max_size=5),
       splits=st.lists(st.integers(min_value=1, max_value=4000), max_size=8))
def test_round_trip_in_any_split(parts: list[tuple[str, str | None, bytes]],
                                 splits: list[int]) -> None:
    body = encode(parts)
    cuts = sorted({s for s in splits if s < len(body)})
    assert parse(body, cuts) == parts


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from([b"--", B, b"\r\n", b"\n", b"\r", b"x", b"Content-Disposition: ",
                              b"form-data; name=a", b'; filename="f"', b'; filename="', b"*=UTF-8''%", b"\r\n\r\n", b" "]),
             max_size=40).map(b"".join)),
    splits=st.lists(st.integers(min_value=1, max_value=400), max_size=6))
def test_any_bytes_give_events_or_a_400(body: bytes, splits: list[int]) -> None:
    try:
        parse(body, sorted({s for s in splits if s < len(body)}))
    except MultipartError as exc:
        assert exc.status == 400
