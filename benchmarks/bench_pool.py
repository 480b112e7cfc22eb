"""Issue 6: keep-alive hello world, pooled server vs thread-per-connection (same handler).

``minihttp_hello.py --pool`` (PooledHTTPServer) and ``minihttp_hello.py``
(ThreadingHTTPServer) run side by side; wrk measures them in turn (A B A B ...) and the
medians are compared. Target: pooled / threaded >= 0.8 at every ``--connections`` count.

    python3 benchmarks/bench_pool.py [--duration 4] [--rounds 5] [--connections 16 64]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

TARGET = 0.8


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables; return 1 if a competitor was missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/*.json")
    args = parser.parse_args(argv)
    h.require_wrk()

    log = h.log

    specs = [
        h.ServerSpec("threaded", lambda p: h.python_server_argv(
            "minihttp_hello.py", "--port", str(p))),
        h.ServerSpec("pooled", lambda p: h.python_server_argv(
            "minihttp_hello.py", "--port", str(p), "--pool")),
    ]
    note = h.machine_note()
    out: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        servers, missing = h.start_all(stack, specs, log)
        if missing:
            return 1
        for srv in servers.values():
            h.check_get(srv.port, "/", b"Hello World\n")
        for conns in args.connections:
            for srv in servers.values():
                h.run_wrk(srv.url(), connections=conns, duration=1)
            def measure(name: str, c: int = conns) -> h.WrkResult:
                return h.run_wrk(servers[name].url(), connections=c, duration=args.duration)

            results = h.alternate(list(servers), args.rounds, measure, progress=log)
            medians = {n: h.median([r.requests_per_sec for r in rs])
                       for n, rs in results.items()}
            value = h.ratio(medians["pooled"], medians["threaded"])
            print(f"### Hello keep-alive, wrk -t2 -c{conns} -d{args.duration}s, "
                  f"median of {args.rounds} alternating rounds\n")
            print(h.markdown_table(h.SUMMARY_HEADERS, h.summary_rows(results)))
            print()
            print(h.markdown_table(["ratio", "value", "target", "met"],
                                   [["pooled / threaded", value, f">= {TARGET:g}",
                                     "yes" if value >= TARGET else "NO"]]))
            print()
            out[str(conns)] = {"medians": medians, "ratio": value}
    print(f"_{note}_")
    if args.json:
        log(f"wrote {h.write_json('pool', {'args': vars(args), 'machine': note, **out})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
