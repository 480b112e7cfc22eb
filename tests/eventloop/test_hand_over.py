"""A deposed handler hands its deferred wait to the loop (``PooledHTTPServer.hand_over_wait``),
end to end through the proxy, with a deposition forced before every deferral.

On a loaded machine the watchdog deposes turns of a couple of milliseconds, at any point of a
relay; here :class:`DeposingProxy` makes each handler leave the loop (``leave_loop``: the loop
goes to another thread at once) just before it defers, so that every wait of a relay, in both
directions, is set up by a thread that no longer leads the loop and resumes on the loop's
thread: the writer, the body reader and both sockets change threads at every step. The bodies
must still arrive whole and in order, and the slow readers must hold no thread.
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from minihttp.proxy import PooledProxyServer, ProxyConfig
from tests.helpers.bodies import read_bodies, slow_readers
from tests.helpers.proxy import Reply, Seen, Upstream
from tests.helpers.servers import running

SIZE = 2 * 1024 * 1024 + 7
BODY = hashlib.sha256(b"hand over").digest() * (SIZE // 32) + b"x" * (SIZE % 32)


class DeposingProxy(PooledProxyServer):
    """The pooled proxy, whose handlers lose the loop just before each deferral; counts the
    waits handed to the loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed = 0
        self.refused = 0

    def defer_readable(self, handler: Any) -> bool:
        self.leave_loop(handler)  # a no-op for a handler already off the loop
        return super().defer_readable(handler)

    def hand_over_wait(self, conn: Any, deferred: Any) -> bool:
        took = super().hand_over_wait(conn, deferred)
        if took:
            self.handed += 1
        else:
            self.refused += 1
        return took


def _app(req: Seen) -> Reply:
    if req.method == "PUT":
        digest = hashlib.sha256(req.body).hexdigest().encode()
        return Reply(200, [("Content-Length", str(len(digest)))], digest)
    return Reply(200, [("Content-Length", str(SIZE))],
                 [BODY[i:i + 65536] for i in range(0, SIZE, 65536)])


def test_slow_readers_get_whole_bodies_when_every_wait_is_handed_over() -> None:
    cfg = ProxyConfig(upstream_timeout=10, quiet=True)
    with Upstream(_app) as up:
        server = DeposingProxy(("127.0.0.1", 0), None, config=cfg)
        port = server.server_address[1]
        with running(server):
            with slow_readers(port, f"{up.base}/big", 5) as slow:
                bodies = read_bodies(slow)
            assert [len(b) for b in bodies] == [SIZE] * 5
            assert all(b == BODY for b in bodies)
            # Every deferral was made off the loop, and the loop took them: no thread held.
            assert server.handed > 20 and server.refused == 0, (server.handed, server.refused)


def test_a_streamed_upload_arrives_whole_when_every_wait_is_handed_over() -> None:
    cfg = ProxyConfig(upstream_timeout=10, quiet=True)
    body = bytes(range(256)) * (3 * 4096) + b"tail"
    with Upstream(_app) as up:
        server = DeposingProxy(("127.0.0.1", 0), None, config=cfg)
        with running(server), requests.Session() as session:
            session.trust_env = False
            session.proxies = {"http": f"http://127.0.0.1:{server.server_address[1]}"}
            for _ in range(3):  # on one client connection: it goes on after each
                r = session.put(f"{up.base}/upload", data=body, timeout=20)
                assert r.status_code == 200
                assert r.text == hashlib.sha256(body).hexdigest()
            assert server.handed > 3 and server.refused == 0, (server.handed, server.refused)
        assert [s.body == body for s in up.seen] == [True] * 3
