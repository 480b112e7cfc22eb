"""Issue 3: keep-alive hello world, minihttp vs the stdlib's ThreadingHTTPServer vs the floor.

The servers run side by side; wrk measures them in turn (A B C A B C ...) for ``--rounds``
rounds and the medians are compared as ratios. Targets: minihttp/stdlib >= 4,
minihttp/floor >= 0.6. ``--pool`` adds minihttp's PooledHTTPServer (the CLI's server, which
serves on an event loop), the same with its access log on as ``python -m minihttp`` sets it up
(minihttp-pool-log: target >= 0.9 of minihttp-pool, issue 15 item 13) and the event-loop
floor (floor.py --epoll), the stricter of the two floors. See benchmarks/README.md.

    python3 benchmarks/bench_hello.py [--duration 5] [--rounds 3] [--connections 16] [--pool]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

BODY = b"Hello World\n"
TARGETS = {("minihttp", "stdlib"): 4.0, ("minihttp", "floor"): 0.6,
           ("minihttp-pool", "stdlib"): 4.0, ("minihttp-pool", "floor"): 0.6,
           ("minihttp-pool", "floor-epoll"): 0.6, ("minihttp-pool-log", "minihttp-pool"): 0.9}


def specs(pool: bool, baseline: Path | None = None) -> list[h.ServerSpec]:
    """The competitors, in the order they are alternated (with ``baseline``, each minihttp
    server is followed by its twin from that checkout)."""
    out = [h.ServerSpec("minihttp", lambda p: h.python_server_argv(
        "minihttp_hello.py", "--port", str(p)))]
    if baseline is not None:
        out.append(h.baseline_spec(out[-1], baseline, "minihttp_hello.py", "--port", "{port}"))
    if pool:
        out.append(h.ServerSpec("minihttp-pool", lambda p: h.python_server_argv(
            "minihttp_hello.py", "--port", str(p), "--pool")))
        if baseline is not None:
            out.append(h.baseline_spec(out[-1], baseline, "minihttp_hello.py", "--port",
                                       "{port}", "--pool"))
        # The access log on, as the command line sets it up (the lines go to the server's
        # log file, as a service's stderr goes to a file or a journal).
        out.append(h.ServerSpec("minihttp-pool-log", lambda p: h.python_server_argv(
            "minihttp_hello.py", "--port", str(p), "--pool", "--log", "cli")))
    out += [
        h.ServerSpec("stdlib", lambda p: h.python_server_argv(
            "stdlib_hello.py", "--port", str(p))),
        h.ServerSpec("floor", lambda p: h.python_server_argv("floor.py", "--port", str(p))),
    ]
    if pool:  # the pool serves on an event loop: compare it with the event-loop floor too
        out.append(h.ServerSpec("floor-epoll", lambda p: h.python_server_argv(
            "floor.py", "--port", str(p), "--epoll")))
    return out


def ratio_rows(medians: dict[str, float]) -> list[list[object]]:
    """``a / b`` for each target pair whose two sides were measured."""
    rows: list[list[object]] = []
    for (a, b), target in TARGETS.items():
        if a in medians and b in medians:
            value = h.ratio(medians[a], medians[b])
            rows.append([f"{a} / {b}", value, f">= {target:g}",
                         "yes" if value >= target else "NO"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables; return 1 if a competitor was missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.add_wrk_arguments(parser, connections=16, warmup_help="seconds, per server")
    parser.add_argument("--pool", action="store_true",
                        help="also measure minihttp.eventloop.PooledHTTPServer")
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/*.json")
    h.add_baseline_argument(parser)
    args = parser.parse_args(argv)
    h.require_wrk()

    log = h.log

    note = h.machine_note()
    with contextlib.ExitStack() as stack:
        servers, missing = h.start_all(stack, specs(args.pool, args.baseline), log)
        results = h.check_and_alternate(servers, missing, args, BODY)

    medians = {n: h.median([r.requests_per_sec for r in rs]) for n, rs in results.items()}
    print(f"### Hello world, keep-alive, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, median of {args.rounds} alternating rounds\n")
    print(h.markdown_table(h.SUMMARY_HEADERS, h.summary_rows(results)))
    ratios = ratio_rows(medians)
    if ratios:
        print()
        print(h.markdown_table(["ratio", "value", "target", "met"], ratios))
    for name, reason in missing.items():
        print(f"\n{name}: not measured ({reason})")
    print(f"\n_{note}_")
    if args.json:
        path = h.write_json("hello", {
            "args": vars(args), "machine": note, "missing": missing, "medians": medians,
            "ratios": {r[0]: r[1] for r in ratios},
            "samples": {n: [r.to_json() for r in rs] for n, rs in results.items()}})
        log(f"wrote {path}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
