"""Unit tests of minihttp.wsgi.admission: when the mix-in is added, the jittered limit."""

from __future__ import annotations

from minihttp.wsgi import WSGIRequestHandler
from minihttp.wsgi.admission import Admission, with_admission


def test_no_option_no_mixin() -> None:
    assert with_admission(WSGIRequestHandler) is WSGIRequestHandler


def test_jitter_spreads_the_limit_within_its_range() -> None:
    cls = with_admission(WSGIRequestHandler, max_requests=100, max_requests_jitter=10)
    assert issubclass(cls, Admission)
    handler = cls.__new__(cls)
    limits = {handler._retire_after() for _ in range(500)}
    assert min(limits) >= 100 and max(limits) <= 110
    assert len(limits) > 5  # jittered, not constant
    plain = with_admission(WSGIRequestHandler, max_requests=100)
    assert {plain.__new__(plain)._retire_after() for _ in range(50)} == {100}
