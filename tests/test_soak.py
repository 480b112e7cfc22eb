"""Soak: many requests over keep-alive and new connections with 10% abrupt disconnects.

The normal suite runs 2,000 requests per server kind; ``python3 -m pytest -m slow
tests/test_soak.py`` runs the full 100,000 (see benchmarks/soak.py for the figures). Every
response read to the end must be exactly right, and afterwards the server's threads and
descriptors must be back where they started.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import soak  # noqa: E402

HAVE_POOL = importlib.util.find_spec("minihttp.eventloop.server") is not None


def kinds() -> list[object]:
    return ["threading", pytest.param("pooled", marks=pytest.mark.skipif(
        not HAVE_POOL, reason="minihttp.eventloop.PooledHTTPServer does not exist yet"))]


def check(out: dict[str, object], requests: int) -> None:
    assert out["errors"] == [], out
    assert out["completed"] + out["aborted"] == requests, out  # type: ignore[operator]
    assert 0.05 * requests < out["aborted"] < 0.15 * requests, out  # type: ignore[operator]
    fds, threads = out["fds"], out["threads"]
    assert fds["serving_after"] <= fds["serving_start"], out  # type: ignore[index]
    assert fds["after_close"] <= fds["before"], out  # type: ignore[index]
    assert threads["after_close"] <= threads["before"], out  # type: ignore[index]
    if out["server"] == "threading":
        assert threads["serving_after"] <= threads["serving_start"], out  # type: ignore[index]


@pytest.mark.parametrize("server", kinds())
def test_soak_small(server: str) -> None:
    check(soak.run(requests=2000, clients=4, server=server), 2000)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("server", kinds())
def test_soak_100k(server: str) -> None:
    check(soak.run(requests=100_000, clients=8, server=server), 100_000)


def test_body_for_is_deterministic_and_distinct() -> None:
    assert soak.body_for(5) == b"5;5;5"
    assert soak.body_for(20011) == b""
    assert soak.body_for(7) != soak.body_for(8)[:7]
