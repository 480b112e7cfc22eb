"""Instructions per proxied keep-alive hello request on the pooled proxy, under callgrind.

``cpu_proxy.py`` measures CPU time, which on the shared 2-core machine swings with whatever
else runs; instruction counts do not. This runs the command line's default proxy
(:class:`minihttp.proxy.PooledProxyServer`, its event loop deferring each upstream wait) in
this process, an upstream (benchmarks/servers/minihttp_hello.py) in a subprocess that
callgrind does not follow, and one client thread sending ``n`` absolute-form GETs one after
the other on one keep-alive connection. Count two runs and take the difference per request
(start-up, the warm-up and the client's set-up cancel out; the client's own few
instructions per request stay in, the same before and after a change)::

    py=$(python3 -c "import sys; print(sys.executable)")  # valgrind must run it, not a shim
    ic() { PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
           "$py" benchmarks/icount_proxy.py "$@" 2>&1 >/dev/null \\
           | grep -o "Collected : [0-9]*" | grep -o "[0-9]*$"; }
    echo $(( ($(ic 3000) - $(ic 1000)) / 2000 ))

``--upstream nginx`` answers from nginx, as ``bench_proxy.py`` does: its heads name
``keep-alive`` in Connection and carry more fields than minihttp's hello, so that is the
figure that matches the benchmark (minihttp's hello is the default for machines without nginx).

Under valgrind a handler turn lasts milliseconds, so the loop's watchdog would hand the loop
to another thread on most requests; ``inline_budget`` is raised so that it never does, as
on a real machine. With one strictly serial client the loop also runs ``epoll_wait`` twice
per request, which a loaded server shares between many connections.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks import _nginx
from benchmarks.cpu_proxy import _client, _QuietHandler, _request
from minihttp.proxy import PooledProxyServer, ProxyConfig

#: Requests before the counted ones start mattering (pool filled, caches warm).
WARMUP = 200


def _varying_client(port: int, up_port: int, n: int) -> None:
    """``n`` requests on one keep-alive connection, each for ``/?n=<i>`` (no head repeats)."""
    import socket

    from benchmarks.cpu_proxy import _read_response

    authority = f"127.0.0.1:{up_port}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        for i in range(n):
            sock.sendall(f"GET http://{authority}/?n={i} HTTP/1.1\r\nHost: {authority}\r\n"
                         "User-Agent: cpu_proxy\r\nAccept: */*\r\n\r\n".encode("ascii"))
            _read_response(sock, buf)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", type=int)
    parser.add_argument("--log", action="store_true",
                        help="the handler's access log on (to /dev/null) instead of quiet")
    parser.add_argument("--vary", action="store_true",
                        help="a new target on every request (no head repeats)")
    parser.add_argument("--upstream", choices=["minihttp", "nginx"], default="minihttp",
                        help="the upstream answering the hello: minihttp's (default) or nginx, "
                             "as bench_proxy.py uses (its head names keep-alive in Connection)")
    args = parser.parse_args()
    handler: type = _QuietHandler
    if args.log:
        import os

        from minihttp import logs
        from minihttp.proxy import ProxyHandler

        handler = ProxyHandler
        logs.configure(fd=os.open(os.devnull, os.O_WRONLY))
    up_port = h.free_port()
    with contextlib.ExitStack() as stack:
        if args.upstream == "nginx":
            work = stack.enter_context(h.temp_dir("icount-proxy-"))
            root = work / "www"
            root.mkdir()
            (root / "index.html").write_bytes(b"Hello World\n")
            argv = _nginx.nginx_argv(_nginx.write_nginx_conf(work, root, up_port), work)
        else:
            argv = h.python_server_argv("minihttp_hello.py", "--port", str(up_port))
        stack.enter_context(h.start_server("upstream", argv, up_port, ready_timeout=60.0))
        server = PooledProxyServer(("127.0.0.1", 0), handler,
                                   config=ProxyConfig(quiet=not args.log))
        server.inline_budget = 1e6
        loop = threading.Thread(target=server.serve_forever, name="icount-proxy-loop")
        loop.start()
        try:
            request = _request(up_port)
            _client(server.server_address[1], request, WARMUP)
            if args.vary:
                _varying_client(server.server_address[1], up_port, args.requests)
            else:
                _client(server.server_address[1], request, args.requests)
        finally:
            server.shutdown()
            loop.join(60)
            server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
