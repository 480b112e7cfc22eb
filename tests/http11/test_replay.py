"""Self-tests of the replay helper (tests/helpers/replay.py): it must split and report truly."""

from __future__ import annotations

from tests.helpers.replay import bytewise, pieces, random_sizes, replay, whole


def test_pieces_cover_the_input_exactly() -> None:
    data = bytes(range(50))
    for sizes in (whole(data), bytewise(), random_sizes(3)):
        got = list(pieces(data, sizes))
        assert b"".join(got) == data and all(got)
    assert list(pieces(b"abc", bytewise())) == [b"a", b"b", b"c"]


def test_replay_reports_incomplete_and_errors() -> None:
    assert replay(b"GET / HTTP/1.1\r\n", whole(b"x")).kind == "incomplete"
    out = replay(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", bytewise())
    assert (out.kind, out.status, out.close) == ("error", 505, True)
