"""Issue 13: WSGI applications on minihttp against the servers people use for them.

Four measures (each prints its own Markdown tables; the harness's discipline: servers side
by side, alternated round by round, medians, ratios):

* default: the same Flask hello (``benchmarks/servers/wsgi_apps.py:flask_app``) on minihttp
  (``python -m minihttp wsgi``, one process, and ``--workers 2``), waitress (4 threads),
  gunicorn gthread (1 worker, 4 threads), cheroot (4 threads), uvicorn ``--interface wsgi``
  and granian ``--interface wsgi`` (1 worker); wrk -c16 keep-alive. Targets: one process
  >= 3.5x waitress with p99 <= 10 ms; ``--workers 2`` >= granian's one process.
* ``--hello``: a trivial WSGI hello through the gateway against minihttp's own
  ``BaseHTTPRequestHandler`` hello (servers/minihttp_hello.py's handler, same 12-byte
  answer), both run by ``python -m minihttp`` (``wsgi`` and ``run``) on the same server:
  the gateway may cost at most 30% (ratio >= 0.7).
* ``--blocking``: an application sleeping 50 ms per request (``wsgi_apps:blocking``) with
  ``--threads 64``: wrk -c64 on ``/slow`` while wrk -c1 measures ``/fast``. Targets: >= 1,100
  req/s (0.9 of the 1,280 ideal), p99 <= 100 ms, ``/fast`` p99 < 5 ms.
* ``--cpu``: Python CPU per request over a fake socket (no kernel, benchmarks/_fakesock.py):
  the handler hello, the WSGI hello and the Flask hello (best of several runs).

The competitors are never dependencies of minihttp: install them in a benchmark-only
environment (``pip install -e '.[bench]'`` in a venv) and run this script with its Python;
a competitor that is not installed is reported as not measured. wrk comes from Debian
(``apt-get install wrk``). Loopback only.

    python3 benchmarks/bench_wsgi.py [--duration 4] [--rounds 3] [--hello | --blocking | --cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h

BODY = b"Hello World\n"
FLASK = "benchmarks.servers.wsgi_apps:flask_app"
HELLO = "benchmarks.servers.wsgi_apps:hello"
BLOCKING = "benchmarks.servers.wsgi_apps:blocking"
PY = sys.executable
TARGETS = {("minihttp", "waitress"): 3.5, ("minihttp-w2", "granian"): 1.0,
           ("minihttp-wsgi", "minihttp-handler"): 0.7}


def _minihttp(app: str, *extra: str) -> Any:
    return lambda p: [PY, "-m", "minihttp", "wsgi", app, str(p), "-q", *extra]


def flask_specs(app: str = FLASK) -> list[h.ServerSpec]:
    """The competitors of the Flask hello, in the order they are alternated."""
    bind = "127.0.0.1"
    return [
        h.ServerSpec("minihttp", _minihttp(app), cwd=h.REPO_ROOT),
        h.ServerSpec("minihttp-w2", _minihttp(app, "--workers", "2"), cwd=h.REPO_ROOT),
        # waitress logs a WARNING line per request whenever a request waits for one of its
        # threads ("Task queue depth is 1"), which at -c16 costs it two thirds of its
        # throughput (measured, same minute: 1,273 against 4,631 req/s silenced).
        h.ServerSpec("waitress", lambda p: [PY, "-c", _WAITRESS.format(
            app=app.replace(":", "', '"), listen=f"{bind}:{p}")], cwd=h.REPO_ROOT),
        h.ServerSpec("gunicorn", lambda p: [PY, "-m", "gunicorn", "-b", f"{bind}:{p}",
                                            "-k", "gthread", "-w", "1", "--threads", "4",
                                            "--log-level", "warning", app], cwd=h.REPO_ROOT),
        h.ServerSpec("cheroot", lambda p: [PY, "-m", "cheroot", "--bind", f"{bind}:{p}",
                                           "--threads", "4", app], cwd=h.REPO_ROOT),
        h.ServerSpec("uvicorn", lambda p: [PY, "-m", "uvicorn", "--interface", "wsgi",
                                           "--host", bind, "--port", str(p),
                                           "--no-access-log", "--log-level", "warning", app],
                     cwd=h.REPO_ROOT),
        h.ServerSpec("granian", lambda p: [PY, "-m", "granian", "--interface", "wsgi",
                                           "--host", bind, "--port", str(p), "--workers", "1",
                                           "--log-level", "warning", app], cwd=h.REPO_ROOT),
    ]


_WAITRESS = ("import importlib, logging, waitress; "
             "logging.getLogger('waitress.queue').setLevel(logging.ERROR); "
             "m, n = '{app}'; app = getattr(importlib.import_module(m), n); "
             "waitress.serve(app, listen='{listen}', threads=4)")

#: The module each competitor needs (a missing one is reported, not a failure).
NEEDS = {"waitress": "waitress", "gunicorn": "gunicorn", "cheroot": "cheroot",
         "uvicorn": "uvicorn", "granian": "granian"}


def hello_specs() -> list[h.ServerSpec]:
    """The gateway's own cost: WSGI hello vs the handler hello (servers/minihttp_hello.py's
    HelloHandler), both started by the same command line on the same server, so the only
    difference is the gateway."""
    return [
        h.ServerSpec("minihttp-wsgi", _minihttp(HELLO), cwd=h.REPO_ROOT),
        h.ServerSpec("minihttp-handler", lambda p: [
            PY, "-m", "minihttp", "run", "benchmarks.servers.minihttp_hello:HelloHandler",
            str(p), "-q"], cwd=h.REPO_ROOT),
    ]


def ratio_rows(medians: dict[str, float]) -> list[list[object]]:
    rows: list[list[object]] = []
    for (a, b), target in TARGETS.items():
        if a in medians and b in medians:
            value = h.ratio(medians[a], medians[b])
            rows.append([f"{a} / {b}", value, f">= {target:g}",
                         "yes" if value >= target else "NO"])
    return rows


def _available(specs: list[h.ServerSpec]) -> tuple[list[h.ServerSpec], dict[str, str]]:
    keep, missing = [], {}
    for spec in specs:
        module = NEEDS.get(spec.name)
        if module and importlib.util.find_spec(module) is None:
            missing[spec.name] = f"{module} is not installed (pip install -e '.[bench]')"
        else:
            keep.append(spec)
    return keep, missing


def compare(specs: list[h.ServerSpec], args: argparse.Namespace, title: str) -> int:
    """Start the servers, check them, alternate wrk over them; print the tables."""
    specs, missing = _available(specs)
    note = h.machine_note()
    with contextlib.ExitStack() as stack:
        servers, failed = h.start_all(stack, specs, h.log)
        missing.update(failed)
        results = h.check_and_alternate(servers, missing, args, BODY)
    medians = {n: h.median([r.requests_per_sec for r in rs]) for n, rs in results.items()}
    print(f"### {title}, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
          f"median of {args.rounds} alternating rounds\n")
    print(h.markdown_table(h.SUMMARY_HEADERS, h.summary_rows(results)))
    ratios = ratio_rows(medians)
    if ratios:
        print()
        print(h.markdown_table(["ratio", "value", "target", "met"], ratios))
    for name, reason in missing.items():
        print(f"\n{name}: not measured ({reason})")
    print(f"\n_{note}_\n")
    if args.json:
        path = h.write_json("wsgi", {"title": title, "args": vars(args), "machine": note,
                                     "missing": missing, "medians": medians,
                                     "samples": {n: [r.to_json() for r in rs]
                                                 for n, rs in results.items()}})
        h.log(f"wrote {path}")
    return 0


def blocking(args: argparse.Namespace) -> int:
    """50 ms per request, --threads 64: wrk -c64 on /slow with wrk -c1 on /fast meanwhile."""
    spec = h.ServerSpec("minihttp", _minihttp(BLOCKING, "--threads", "64"), cwd=h.REPO_ROOT)
    slow_runs: list[h.WrkResult] = []
    fast_runs: list[h.WrkResult] = []
    with contextlib.ExitStack() as stack:
        servers, missing = h.start_all(stack, [spec], h.log)
        if missing:
            print(f"not measured: {missing}")
            return 1
        srv = servers["minihttp"]
        h.check_get(srv.port, "/fast", BODY)
        for r in range(args.rounds):
            box: list[h.WrkResult] = []
            slow = threading.Thread(target=lambda out=box: out.append(h.run_wrk(
                srv.url() + "slow", connections=64, duration=args.duration + 2,
                threads=args.threads)))
            slow.start()
            time.sleep(1.0)  # /slow at full load first
            fast = h.run_wrk(srv.url() + "fast", connections=1, duration=args.duration,
                             threads=1)
            slow.join()
            slow_runs += box
            fast_runs.append(fast)
            h.log(f"round {r + 1}: slow {box[0].requests_per_sec:,.0f} req/s, fast p99 "
                  f"{fast.latency_percentiles.get('99', float('nan')) * 1e3:.1f} ms")
    print(f"### Blocking application (50 ms sleep), --threads 64, wrk -c64 on /slow and -c1 on "
          f"/fast at the same time, {args.rounds} rounds\n")
    print(h.markdown_table(h.SUMMARY_HEADERS, h.summary_rows({"/slow (c64)": slow_runs,
                                                              "/fast (c1)": fast_runs})))
    slow_rps = h.median([r.requests_per_sec for r in slow_runs])
    slow_p99 = h.median([r.latency_percentiles.get("99", float("nan")) for r in slow_runs])
    fast_p99 = h.median([r.latency_percentiles.get("99", float("nan")) for r in fast_runs])
    print()
    print(h.markdown_table(["measure", "value", "target", "met"], [
        ["/slow req/s", slow_rps, ">= 1,100", "yes" if slow_rps >= 1100 else "NO"],
        ["/slow p99 ms", slow_p99 * 1e3, "<= 100", "yes" if slow_p99 <= 0.1 else "NO"],
        ["/fast p99 ms", fast_p99 * 1e3, "< 5", "yes" if fast_p99 < 0.005 else "NO"]]))
    print(f"\n_{h.machine_note()}_\n")
    return 0


def _no_log(self: Any, format: str, *args: Any) -> None:
    """A quiet ``log_message`` (what the hello handler of ``--cpu`` has)."""


def cpu(args: argparse.Namespace) -> int:
    """CPU per request of the three hellos over a fake socket (best of ``--rounds``)."""
    sys.path.insert(0, str(h.SERVERS_DIR))
    import minihttp_hello  # type: ignore[import-not-found]

    from benchmarks._fakesock import FakeServer, FakeSocket, cpu_per_request
    from benchmarks.servers import wsgi_apps
    from minihttp.wsgi import make_handler

    request = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"

    def per_request(cls: Any, n: int) -> float:
        a, b = socket.socketpair(socket.AF_UNIX)
        try:
            handler = cls.attach(a, ("127.0.0.1", 1), FakeServer())
            handler.reader.sock = FakeSocket(request)
            handler._writer.sock = FakeSocket(request)
            return float(cpu_per_request(handler, n))
        finally:
            a.close()
            b.close()

    rows: list[list[object]] = []
    kinds = [("BaseHTTPRequestHandler hello", minihttp_hello.HelloHandler, 20000),
             ("WSGI hello (gateway)", make_handler(wsgi_apps.hello), 20000)]
    if wsgi_apps.flask_app is not None:
        kinds.append(("Flask hello (gateway)", make_handler(wsgi_apps.flask_app), 5000))
    for name, cls, n in kinds:
        if cls is not minihttp_hello.HelloHandler:
            # Quiet as the handler hello is (its log_message does nothing): else every
            # WSGI request wrote an access line to stderr and the rows compared unlike work.
            cls = type(cls.__name__, (cls,), {"log_message": _no_log})
        best = min(per_request(cls, n) for _ in range(max(args.rounds, 3)))
        rows.append([name, best * 1e6])
    print("### CPU per request, fake socket (no kernel), best of runs\n")
    print(h.markdown_table(["handler", "us per request"], rows))
    print(f"\n_{h.machine_note()}_\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.add_wrk_arguments(parser, connections=16)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--hello", action="store_true",
                      help="WSGI hello vs minihttp's own handler hello (the gateway's cost)")
    mode.add_argument("--blocking", action="store_true",
                      help="a 50 ms blocking app with --threads 64 (and a fast endpoint)")
    mode.add_argument("--cpu", action="store_true",
                      help="Python CPU per request over a fake socket (no wrk)")
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/*.json")
    args = parser.parse_args(argv)
    if args.cpu:
        return cpu(args)
    h.require_wrk()
    if args.blocking:
        return blocking(args)
    if args.hello:
        return compare(hello_specs(), args, "Hello world: WSGI gateway vs handler, keep-alive")
    if importlib.util.find_spec("flask") is None:
        raise SystemExit("flask is not installed: pip install -e '.[bench]'")
    return compare(flask_specs(), args, "Flask hello, keep-alive, one process unless named")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
