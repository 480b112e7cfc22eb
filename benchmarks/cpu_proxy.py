"""CPU cost of one proxied keep-alive hello request on the proxy's side (issue 5).

``bench_proxy.py`` measures throughput with wrk, which on a 2-core machine swings with
whatever else runs. This script measures what the proxy itself spends, which swings much
less:

* the upstream (benchmarks/servers/minihttp_hello.py) runs in a subprocess, so its CPU is not
  counted;
* the proxy (:class:`minihttp.proxy.handler.ProxyServer`) runs in this process, on 127.0.0.1 port 0;
* one raw-socket client thread sends ``--requests`` absolute-form GETs, strictly one after the
  other on one keep-alive connection, reading each whole response before the next;
* the figure is the CPU time (``time.thread_time``) of the proxy's connection thread, from
  the start of its ``handle()`` to its end, divided by the number of requests: request
  parsing, admission, header rules, h11 on the upstream side, the pool, the response to the
  client and the system calls of all that (kernel time of the thread counts too). The client
  thread's own CPU is not in it; the time the thread waits is not CPU time.

Each run is one connection; ``--runs`` runs give a median and a minimum (the minimum is the
least disturbed). A warm-up run first fills the upstream pool and every cache, so what is
measured is the steady state of a keep-alive connection through a pooled upstream.

    python3 benchmarks/cpu_proxy.py [--requests N] [--runs N] [--profile]

``--profile`` runs cProfile inside the proxy's connection thread for one run and prints the
function calls per request and the top ``--top`` functions by ``--sort`` (own time by
default; ``--sort tottime,ncalls`` prints both) instead.

``--pooled`` measures :class:`minihttp.proxy.handler.PooledProxyServer` (the command line's
default) instead: the CPU clock of its event-loop thread over the run (it serves the
client and resumes each deferred upstream wait), the process pinned to one CPU as in
``cpu_hello.py --pooled`` (``--no-pin`` to leave it free). The loop also runs epoll_wait for
every request here (one client, strictly serial), which a loaded server shares between many.

``--fake`` measures the Python alone: one proxy handler driven over fake sockets on both
sides (``_fakesock.FakeSocket``: the client's request and the upstream's 12-byte response
are handed over whole, writes dropped), so no kernel and no waiting, the best of ``--runs``;
it also prints one h11 client cycle alone (the request and its end sent, the response
received, three events read, the next cycle started), the part of it the issue requires.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and minihttp importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from minihttp.proxy import ProxyConfig, ProxyHandler, ProxyServer

BODY = b"Hello World\n"
#: getrusage for the calling thread only (Linux); the user/system split of the figure.
_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class _MeasuredHandler(ProxyHandler):
    """ProxyHandler that records the CPU time of its connection thread (and may profile it)."""

    # Set by the benchmark before each run (one connection per run, so no locking needed).
    samples: list[tuple[float, float, float]] = []
    profile: Any = None

    def handle(self) -> None:
        profile = type(self).profile
        started = time.thread_time()
        usage = resource.getrusage(_RUSAGE_THREAD)
        if profile is not None:
            profile.enable()
        try:
            super().handle()
        finally:
            if profile is not None:
                profile.disable()
            spent = time.thread_time() - started
            after = resource.getrusage(_RUSAGE_THREAD)
            type(self).samples.append((spent, after.ru_utime - usage.ru_utime,
                                       after.ru_stime - usage.ru_stime))

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _request(upstream_port: int) -> bytes:
    """The absolute-form request a browser configured with a proxy sends (RFC 9112 3.2.2)."""
    authority = f"127.0.0.1:{upstream_port}"
    return (f"GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n"
            "User-Agent: cpu_proxy\r\nAccept: */*\r\n\r\n").encode("ascii")


def _read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one whole Content-Length response into ``buf`` (cleared first); check it."""
    buf.clear()
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("proxy closed the connection")
        buf += chunk
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1.1 200 "):
        raise RuntimeError(f"unexpected response: {bytes(buf[:200])!r}")
    start = head.index(b"\r\ncontent-length:") + len(b"\r\ncontent-length:")
    length = int(head[start:head.find(b"\r\n", start) if head.find(b"\r\n", start) >= 0
                      else len(head)])
    while len(buf) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("proxy closed the connection mid-body")
        buf += chunk
    if bytes(buf[end + 4:]) != BODY:
        raise RuntimeError(f"unexpected body: {bytes(buf[end + 4:])!r}")


def _client(proxy_port: int, request: bytes, n: int) -> None:
    """``n`` sequential keep-alive requests on one connection, then close it."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        for _ in range(n):
            sock.sendall(request)
            _read_response(sock, buf)


def run_once(server: ProxyServer, request: bytes, n: int) -> tuple[float, float, float]:
    """(CPU, user, system) seconds of the proxy connection thread per request, ``n`` requests."""
    samples: list[tuple[float, float, float]] = []
    _MeasuredHandler.samples = samples
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _client(server.server_address[1], request, n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=client, name="cpu-proxy-client", daemon=True)
    thread.start()
    thread.join(600)
    deadline = time.monotonic() + 10
    while not samples and time.monotonic() < deadline:  # handle() ends just after the close
        time.sleep(0.01)
    if errors:
        raise SystemExit(f"client failed: {errors[0]!r}")
    if thread.is_alive() or not samples:
        raise SystemExit("the run did not finish")
    spent, user, system = samples[0]
    return spent / n, user / n, system / n


_FAKE_RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: minihttp/0.1\r\n"
                  b"Date: Sat, 21 Nov 2026 16:00:00 GMT\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: 12\r\n\r\n" + BODY)


def run_fake(args: argparse.Namespace) -> int:
    """``--fake``: Python CPU per proxied request with fake sockets; and one h11 cycle."""
    import h11

    from benchmarks._fakesock import FakeSocket
    from minihttp.proxy.connections import UpstreamConnection
    from minihttp.proxy.upstream import H11_HEADERS

    class _Upstream(FakeSocket):
        def fileno(self) -> int:
            return -1

    server = ProxyServer(("127.0.0.1", 0), _QuietHandler, config=ProxyConfig(quiet=True),
                         bind_and_activate=False)
    server.server_address = ("127.0.0.1", 8080)
    up = UpstreamConnection(_Upstream(_FAKE_RESPONSE), ("127.0.0.1", 8001))  # type: ignore[arg-type]

    def acquire(key: tuple[str, int]) -> UpstreamConnection:
        up.reused = True
        return up

    def release(conn: UpstreamConnection) -> None:
        conn.next_cycle()

    server.proxy_pool.acquire = acquire  # type: ignore[method-assign]
    server.proxy_pool.release = release  # type: ignore[method-assign]
    client, other = socket.socketpair()
    try:
        handler = _QuietHandler.attach(client, ("127.0.0.1", 1), server)
        reader, writer = handler.reader, handler._writer
        assert reader is not None and writer is not None
        reader.sock = FakeSocket(_request(8001))  # type: ignore[assignment]
        keep = FakeSocket(b"", keep=True)
        writer.sock = keep  # type: ignore[assignment]
        handler.handle_one_request()
        if not keep.sent or not keep.sent[0].startswith(b"HTTP/1.1 200 ") \
                or not keep.sent[0].endswith(BODY):
            raise SystemExit(f"unexpected response: {keep.sent!r}")
        writer.sock = FakeSocket(b"")  # type: ignore[assignment]
        one = handler.handle_one_request
        runs = []
        for _ in range(args.runs):
            started = time.process_time()
            for _ in range(args.requests):
                one()
            runs.append((time.process_time() - started) / args.requests)
    finally:
        client.close()
        other.close()
        server.server_close()
    conn = h11.Connection(h11.CLIENT)
    fields = [(b"Host", b"host", b"127.0.0.1:8001"), (b"User-Agent", b"user-agent", b"x"),
              (b"Via", b"via", b"1.1 minihttp"),
              (b"X-Forwarded-For", b"x-forwarded-for", b"127.0.0.1")]
    end = h11.EndOfMessage()
    cycles = []
    for _ in range(args.runs):
        started = time.process_time()
        for _ in range(args.requests):
            if H11_HEADERS is not None:
                request = h11.Request(method=b"GET", target=b"/",
                                      headers=H11_HEADERS(fields), _parsed=True)
            else:
                request = h11.Request(method=b"GET", target=b"/",
                                      headers=[(n, v) for n, _, v in fields])
            conn.send(request)
            conn.send(end)
            conn.receive_data(_FAKE_RESPONSE)
            conn.next_event()
            conn.next_event()
            conn.next_event()
            conn.start_next_cycle()
        cycles.append((time.process_time() - started) / args.requests)
    print(f"proxy Python CPU per proxied request, fake sockets: {min(runs) * 1e6:.1f} us "
          f"(median {statistics.median(runs) * 1e6:.1f}); of which one h11 client cycle "
          f"alone: {min(cycles) * 1e6:.1f} us (median {statistics.median(cycles) * 1e6:.1f}); "
          f"best of {args.runs} x {args.requests}")
    h.log(h.machine_note())
    return 0


def run_pooled(args: argparse.Namespace, up_port: int) -> int:
    """``--pooled``: the loop thread's CPU per request on a PooledProxyServer."""
    from benchmarks._fakesock import start_loop
    from minihttp.proxy import PooledProxyServer

    server = PooledProxyServer(("127.0.0.1", 0), _QuietHandler, config=ProxyConfig(quiet=True))
    profile: Any = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
    loop, clock = start_loop(server, "cpu-proxy-loop", not args.no_pin, profile)
    clocks = [clock]
    request = _request(up_port)
    port = server.server_address[1]

    def one_run(n: int) -> float:
        before = time.clock_gettime(clocks[0])
        _client(port, request, n)
        return (time.clock_gettime(clocks[0]) - before) / n

    try:
        one_run(min(args.requests, 2_000))  # warm-up: pool, caches
        epoch = server._leadership.epoch
        results = [one_run(args.requests) for _ in range(args.runs)]
        if server._leadership.epoch != epoch:
            raise SystemExit("the loop moved to another thread (a busy machine); rerun")
    finally:
        server.shutdown()
        loop.join(30.0)
        server.server_close()
    if profile is not None:  # it saw every run (the loop thread's whole life)
        import pstats

        stats = pstats.Stats(profile)
        for key in args.sort.split(","):
            stats.sort_stats(key).print_stats(args.top)
    us = sorted(r * 1e6 for r in results)
    print(f"pooled proxy loop-thread CPU per proxied keep-alive hello request: median "
          f"{statistics.median(us):.1f} us (min {us[0]:.1f}, max {us[-1]:.1f}) over "
          f"{args.runs} runs x {args.requests} requests")
    h.log(h.machine_note())
    return 0


class _QuietHandler(ProxyHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000, help="requests per run")
    parser.add_argument("--runs", type=int, default=7, help="measured runs (one connection each)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one run in the proxy's connection thread instead")
    parser.add_argument("--sort", default="tottime",
                        help="pstats sort key(s) for --profile, comma-separated "
                             "(tottime, ncalls, cumulative)")
    parser.add_argument("--top", type=int, default=25, help="rows printed by --profile")
    parser.add_argument("--pooled", action="store_true",
                        help="measure PooledProxyServer's loop thread instead")
    parser.add_argument("--no-pin", action="store_true",
                        help="--pooled: do not pin the process to one CPU")
    parser.add_argument("--fake", action="store_true",
                        help="Python alone: fake sockets on both sides, no upstream process")
    args = parser.parse_args(argv)
    if args.fake:
        return run_fake(args)

    up_port = h.free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(h.start_server(
            "upstream", h.python_server_argv("minihttp_hello.py", "--port", str(up_port)),
            up_port))
        if args.pooled:
            return run_pooled(args, up_port)
        server = ProxyServer(("127.0.0.1", 0), _MeasuredHandler,
                             config=ProxyConfig(quiet=True))
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                   name="cpu-proxy-serve", daemon=True)
        serving.start()

        def stop() -> None:
            server.shutdown()
            serving.join(10)
            server.server_close()

        stack.callback(stop)
        request = _request(up_port)
        run_once(server, request, min(args.requests, 2_000))  # warm-up: pool, caches
        if args.profile:
            import cProfile
            import pstats

            _MeasuredHandler.profile = cProfile.Profile()
            run_once(server, request, args.requests)
            stats = pstats.Stats(_MeasuredHandler.profile)
            calls = sum(row[1] for row in stats.stats.values())  # type: ignore[attr-defined]
            print(f"{calls / args.requests:.0f} function calls per request "
                  f"(cProfile, primitive and recursive)")
            for key in args.sort.split(","):
                stats.sort_stats(key).print_stats(args.top)
            return 0
        results = [run_once(server, request, args.requests) for _ in range(args.runs)]
    us = sorted(r[0] * 1e6 for r in results)
    user = statistics.median(r[1] * 1e6 for r in results)
    system = statistics.median(r[2] * 1e6 for r in results)
    print(f"proxy CPU per proxied keep-alive hello request: median {statistics.median(us):.1f} "
          f"us (min {us[0]:.1f}, max {us[-1]:.1f}; user {user:.0f} + system {system:.0f} by "
          f"getrusage, split approximate) over {args.runs} runs x {args.requests} requests")
    h.log(h.machine_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
