"""Bad input over real sockets: smuggling, header and request-line syntax, leftovers, static paths.

Every vector in tests/adversarial/vectors.py is sent to a live server (an echo handler, or
the static handler on a tmp tree; ThreadingHTTPServer and PooledHTTPServer) whole and split
in two writes. The answer is
parsed with h11 as a strict client: the statuses must be the expected ones, the connection
must close when the vector says so (with nothing after the answers), or stay usable (a probe
request is answered), and a request named /smuggled is never answered. No ERROR log record
and no traceback may appear.

CI runs every split position for a representative subset and a seeded sample of positions for
the rest; ``python3 -m pytest -m slow tests/test_adversarial.py`` runs every position of every
vector.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.adversarial import (
    LIMITS,
    EchoHandler,
    Exchange,
    QuietStatic,
    Server,
    capture_errors,
    make_static_tree,
    replay,
    serving,
)
from tests.helpers.adversarial.vectors import BY_NAME, VECTORS, Vector
from tests.helpers.servers import open_fds

# Vectors whose every split position runs in CI: one or two of each family, short ones.
SWEEP = [
    "ok-pipelined-2", "ok-post-chunked", "clte-0", "clte-1", "cl-bad-0", "te-obf-0", "te-http10",
    "chunk-bad-3", "chunk-ext-0", "trailer-framing-0", "hdr-obsfold-0", "hdr-bare-cr-0",
    "host-missing", "line-version-0", "left-in-cl-body-post", "leading-empty-line",
    "static-traversal-2", "static-dir-redirect",
]
SAMPLES_PER_VECTOR = 3


def _pooled() -> Any:
    try:
        from minihttp.eventloop import PooledHTTPServer
    except ImportError:
        return None
    return type("Pooled", (PooledHTTPServer,), {"limits": LIMITS, "daemon_threads": True,
                                                "shutdown_grace": 1.0})


@pytest.fixture(scope="module", params=["threading", "pooled"])
def servers(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, int]]]:
    """The echo and static servers, as ThreadingHTTPServer and as PooledHTTPServer."""
    cls = Server if request.param == "threading" else _pooled()
    if cls is None:
        pytest.skip("minihttp.eventloop.PooledHTTPServer does not exist yet")
    www = make_static_tree(Path(tmp_path_factory.mktemp("adv")))
    threads, fds = threading.active_count(), open_fds()
    echo = cls(("127.0.0.1", 0), EchoHandler)
    static = cls(("127.0.0.1", 0), functools.partial(QuietStatic, directory=str(www)))
    with serving(echo) as a, serving(static) as b:
        yield {"echo": a, "static": b}
    # After every vector: no connection thread hung, no descriptor leaked (bounded wait for
    # the last lingering closes of daemon connection threads).
    end = time.monotonic() + 10
    while time.monotonic() < end and (threading.active_count() > threads or open_fds() > fds):
        time.sleep(0.05)
    assert threading.active_count() <= threads, "a connection thread is still running"
    assert open_fds() <= fds, "descriptors leaked"


def check(v: Vector, ex: Exchange, where: str) -> None:
    """The wire answer is the one the vector states."""
    ctx = f"{v.name} [{where}] ({v.rule}): {ex}"
    assert not ex.error, ctx
    got = [r.status for r in ex.responses]
    n = len(v.statuses)
    assert got[:n] == list(v.statuses), ctx
    for r in ex.responses:
        if v.server == "echo" and r.status == 200 and r.body.startswith(b"{"):
            assert r.json()["target"] != "/smuggled", ctx
    if v.closes:
        assert len(got) == n, ctx
        assert ex.closed, ctx
        assert ex.extra == b"", ctx
    else:
        assert len(got) == n + 1, ctx  # the probe was answered: still in sync
        if v.server == "echo":
            assert ex.responses[-1].json()["target"] == "/probe", ctx
    if v.location is not None:
        assert ex.responses[0].headers.get("location") == v.location, ctx
    if v.body is not None:
        assert ex.responses[0].body == v.body, ctx


def run(v: Vector, addrs: dict[str, tuple[str, int]], parts: list[bytes], where: str) -> None:
    ex = replay(addrs[v.server], parts, list(v.statuses), v.closes,
                head_method=v.data.startswith(b"HEAD"))
    check(v, ex, where)


def positions(v: Vector) -> list[int]:
    rng = random.Random(v.name)  # seeded by name: the same sample every run
    return sorted(rng.sample(range(1, len(v.data)), min(SAMPLES_PER_VECTOR, len(v.data) - 1)))


@pytest.fixture
def no_errors(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    with capture_errors() as cap:
        yield
    assert not cap.records, [r.getMessage() for r in cap.records]
    assert "Traceback" not in capfd.readouterr().err


def test_vector_count_and_rules() -> None:
    assert len(VECTORS) >= 150
    for v in VECTORS:
        assert v.rule, v.name
        assert v.server in ("echo", "static")
        assert v.statuses or v.closes, v.name
    assert set(SWEEP) <= set(BY_NAME)
    assert LIMITS.max_header_count == 20


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_vector_whole_and_sampled_splits(v: Vector, servers: Any, no_errors: None) -> None:
    run(v, servers, [v.data], "whole")
    if v.name in SWEEP:
        return  # covered position by position below
    for i in positions(v):
        run(v, servers, [v.data[:i], v.data[i:]], f"split {i}")


@pytest.mark.parametrize("name", SWEEP)
def test_vector_every_split(name: str, servers: Any, no_errors: None) -> None:
    v = BY_NAME[name]
    for i in range(1, len(v.data)):
        run(v, servers, [v.data[:i], v.data[i:]], f"split {i}")


@pytest.mark.slow
@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_vector_every_split_all(v: Vector, servers: Any, no_errors: None) -> None:
    for i in range(1, len(v.data)):
        run(v, servers, [v.data[:i], v.data[i:]], f"split {i}")


def test_smuggled_never_answered_on_keepalive(servers: Any) -> None:
    """A self-check of the harness: a real second request *is* answered (so the checks above
    would notice one that should not be)."""
    v = Vector("self", b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", (200,), False, "harness")
    ex = replay(servers["echo"], [v.data], [200], False)
    assert ex.responses[0].json()["target"] == "/smuggled"
    with pytest.raises(AssertionError):
        check(v, ex, "whole")


@pytest.mark.parametrize("first", [1, 2, 3, 4, 5])
def test_head_whose_first_read_is_tiny(first: int, servers: Any, no_errors: None) -> None:
    """Found by the split sweep: a first ``recv`` of exactly 3 bytes ("GET") was taken for a
    whole head by a fast path (``find`` = -1 = len - 4) and answered 400. The pause between
    the writes makes the server's first read end at the split (loopback, TCP_NODELAY)."""
    from tests.helpers.adversarial import connect, read_responses

    data = b"GET /tiny HTTP/1.1\r\nHost: a\r\n\r\n"
    with connect(servers["echo"]) as sock:
        sock.sendall(data[:first])
        time.sleep(0.05)
        sock.sendall(data[first:])
        ex = read_responses(sock, 1, want_close=False)
    assert [r.status for r in ex.responses] == [200], ex
    assert ex.responses[0].json()["target"] == "/tiny"
