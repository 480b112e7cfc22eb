"""Issue 4: static files, minihttp vs the stdlib's SimpleHTTPRequestHandler vs nginx.

A temporary directory holds a 4 KiB and a 1 MiB file; the three servers serve it side by side
and wrk measures each (size, server) pair in turn for ``--rounds`` rounds; medians are compared
as ratios. Targets: 4 KiB minihttp/stdlib >= 4; 1 MiB minihttp/nginx >= 0.8; 4 KiB
minihttp/nginx >= 0.75 (issue 14 item 9). With the access log on (issue 15 item 13), 4 KiB:
``--pool`` adds minihttp-pool-log (>= 0.9 of minihttp-pool), ``--cli`` adds minihttp-cli-log,
``python -m minihttp`` without ``--quiet`` (>= 0.9 of minihttp-cli, the CLI with ``--quiet``).

The compressed row (issue 14 item 9): a 100 KiB JavaScript file asked for with
``Accept-Encoding: gzip`` (a wrk Lua script sets it), minihttp with compression on the fly
(``--compress``, level 6; it compresses once and keeps the body) against nginx with
``gzip on`` (its default level 1; it compresses every response); ``--pool`` adds
minihttp-pool-gzip. Only these
servers are measured on that file, and only on it.

    python3 benchmarks/bench_static.py [--duration 5] [--rounds 3] [--connections 8] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks import _nginx

#: name in the tables -> (file name, size in bytes)
FILES = {"4 KiB": ("4k.bin", 4 * 1024), "1 MiB": ("1m.bin", 1024 * 1024)}
#: (file, numerator, denominator) -> target ratio of median req/s
TARGETS = {("4 KiB", "minihttp", "stdlib"): 4.0, ("1 MiB", "minihttp", "nginx"): 0.8,
           ("4 KiB", "minihttp", "nginx"): 0.75}
#: The access log's cost: (file, logging on, the same server quiet) -> target ratio.
LOG_TARGETS = {("4 KiB", "minihttp-pool-log", "minihttp-pool"): 0.9,
               ("4 KiB", "minihttp-cli-log", "minihttp-cli"): 0.9}
#: Ratios shown in addition to the targets, for context.
EXTRA_RATIOS = [("1 MiB", "minihttp", "stdlib")]
#: The compressed row: label, file name, size, and the servers measured on it (only there).
JS_LABEL, JS_FILE, JS_SIZE = "100 KiB JS, gzip", "app.js", 100 * 1024
GZIP_SERVERS = ("minihttp-gzip", "minihttp-pool-gzip", "nginx-gzip")
GZIP_RATIOS = [(JS_LABEL, "minihttp-gzip", "nginx-gzip"),
               (JS_LABEL, "minihttp-pool-gzip", "nginx-gzip")]
#: wrk asks for gzip on the compressed row.
GZIP_LUA = 'wrk.headers["Accept-Encoding"] = "gzip"\n'


def make_files(root: Path) -> dict[str, bytes]:
    """Write the test files (random bytes: no compression can flatter anyone)."""
    contents: dict[str, bytes] = {}
    for label, (fname, size) in FILES.items():
        data = os.urandom(size)
        (root / fname).write_bytes(data)
        contents[label] = data
    # Script-like text (it compresses about as real JavaScript does, ~4:1), the same every run.
    rnd = random.Random(14)
    words = ["function", "return", "const", "let", "if", "else", "this", "value", "index",
             "length", "push", "=>", "{", "}", "(", ")", ";", "null", "await", "async"]
    text = bytearray()
    while len(text) < JS_SIZE:
        text += (" ".join(rnd.choice(words) for _ in range(12))
                 + f" {rnd.randrange(100000)};\n").encode()
    contents[JS_LABEL] = bytes(text[:JS_SIZE])
    (root / JS_FILE).write_bytes(contents[JS_LABEL])
    return contents


def check_gzip(port: int, expect: bytes, timeout: float = 5.0) -> None:
    """GET the JavaScript file with ``Accept-Encoding: gzip`` twice on one connection: it
    must come back gzip-encoded and decompress to the file."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        for _ in range(2):
            conn.request("GET", f"/{JS_FILE}", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or resp.getheader("Content-Encoding") != "gzip":
                raise RuntimeError(f"GET /{JS_FILE} with gzip: status {resp.status}, "
                                   f"Content-Encoding {resp.getheader('Content-Encoding')}")
            if gzip.decompress(body) != expect:
                raise RuntimeError(f"GET /{JS_FILE} with gzip: wrong body")
    finally:
        conn.close()


#: ``python -m minihttp`` (the CLI, with its default server); ``{port}``, ``{dir}`` filled in.
CLI_CMD = ["-m", "minihttp", "--bind", "127.0.0.1", "--directory", "{dir}", "--quiet", "{port}"]


def specs(root: Path, work: Path, pool: bool, cli: bool,
          baseline: Path | None = None) -> list[h.ServerSpec]:
    """The competitors, in the order they are alternated (with ``baseline``, each minihttp
    server is followed by its twin from that checkout)."""
    d = str(root)
    out = [h.ServerSpec("minihttp", lambda p: h.python_server_argv(
        "minihttp_static.py", "--port", str(p), "--directory", d))]
    if baseline is not None:
        out.append(h.baseline_spec(out[-1], baseline, "minihttp_static.py", "--port", "{port}",
                                   "--directory", d))
    if pool:
        out.append(h.ServerSpec("minihttp-pool", lambda p: h.python_server_argv(
            "minihttp_static.py", "--port", str(p), "--directory", d, "--pool")))
        if baseline is not None:
            out.append(h.baseline_spec(out[-1], baseline, "minihttp_static.py", "--port",
                                       "{port}", "--directory", d, "--pool"))
        out.append(h.ServerSpec("minihttp-pool-log", lambda p: h.python_server_argv(
            "minihttp_static.py", "--port", str(p), "--directory", d, "--pool", "--log", "cli")))
    if cli:
        out.append(h.ServerSpec("minihttp-cli", lambda p: [sys.executable] + [
            a.format(port=p, dir=d) for a in CLI_CMD]))
        out.append(h.ServerSpec("minihttp-cli-log", lambda p: [sys.executable] + [
            a.format(port=p, dir=d) for a in CLI_CMD if a != "--quiet"]))
    out += [
        h.ServerSpec("stdlib", lambda p: h.python_server_argv(
            "stdlib_static.py", "--port", str(p), "--directory", d)),
        h.ServerSpec("nginx", lambda p: _nginx.nginx_argv(
            _nginx.write_nginx_conf(work, root, p), work)),
        h.ServerSpec("minihttp-gzip", lambda p: h.python_server_argv(
            "minihttp_static.py", "--port", str(p), "--directory", d, "--compress")),
    ]
    if pool:
        out.append(h.ServerSpec("minihttp-pool-gzip", lambda p: h.python_server_argv(
            "minihttp_static.py", "--port", str(p), "--directory", d, "--pool", "--compress")))
    zwork = work / "gzip"  # a second nginx: its own pid file and temp dirs
    zwork.mkdir(exist_ok=True)
    out.append(h.ServerSpec("nginx-gzip", lambda p: _nginx.nginx_argv(
        _nginx.write_nginx_conf(zwork, root, p, gzip=True), zwork)))
    return out


def ratio_rows(medians: dict[tuple[str, str], float]) -> list[list[object]]:
    """Target ratios (and a few for context) whose two sides were measured."""
    pairs: list[tuple[tuple[str, str, str], float | None]] = [
        *TARGETS.items(), *((k, None) for k in EXTRA_RATIOS + GZIP_RATIOS)]
    for variant in ("minihttp-pool", "minihttp-cli"):
        if any(name == variant for _, name in medians):
            pairs += [((f, variant, b), t) for (f, _, b), t in TARGETS.items()]
    pairs += list(LOG_TARGETS.items())
    rows: list[list[object]] = []
    for (label, a, b), target in pairs:
        if (label, a) in medians and (label, b) in medians:
            value = h.ratio(medians[label, a], medians[label, b])
            met = "" if target is None else ("yes" if value >= target else "NO")
            rows.append([label, f"{a} / {b}", value,
                         "" if target is None else f">= {target:g}", met])
    return rows


def _measure(servers: dict[str, h.ServerProcess], fname: str, args: argparse.Namespace,
             script: Path | None = None) -> Callable[[str], h.WrkResult]:
    def measure(name: str) -> h.WrkResult:
        return h.run_wrk(servers[name].url(f"/{fname}"), connections=args.connections,
                         duration=args.duration, threads=args.threads, script=script)
    return measure


def _plan(servers: dict[str, h.ServerProcess], script: Path
          ) -> list[tuple[str, str, list[str], Path | None]]:
    """(label, file, servers, wrk script) of each row: the plain servers on FILES, the
    gzip ones on the JavaScript file only."""
    plain = [n for n in servers if n not in GZIP_SERVERS]
    zipped = [n for n in servers if n in GZIP_SERVERS]
    rows: list[tuple[str, str, list[str], Path | None]] = [
        (label, fname, plain, None) for label, (fname, _) in FILES.items()]
    if zipped:
        rows.append((JS_LABEL, JS_FILE, zipped, script))
    return rows


def _progress(log: Callable[[str], None], label: str, rnd: int,
              rounds: int) -> Callable[[str], None]:
    def progress(msg: str) -> None:
        log(f"{label} " + msg.replace("round 1/1", f"round {rnd + 1}/{rounds}"))
    return progress


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables; return 1 if a competitor was missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.add_wrk_arguments(parser, connections=8, warmup_help="seconds, per server and file")
    parser.add_argument("--pool", action="store_true",
                        help="also measure minihttp.eventloop.PooledHTTPServer")
    parser.add_argument("--cli", action="store_true",
                        help="also measure `python -m minihttp` (the CLI's default server)")
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/*.json")
    h.add_baseline_argument(parser)
    args = parser.parse_args(argv)
    h.require_wrk()

    log = h.log

    note = h.machine_note()
    results: dict[str, dict[str, list[h.WrkResult]]] = {label: {} for label in
                                                           [*FILES, JS_LABEL]}
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(h.temp_dir("bench-static-root-"))
        work = stack.enter_context(h.temp_dir("bench-static-nginx-"))
        contents = make_files(root)
        servers, missing = h.start_all(stack, specs(root, work, args.pool, args.cli,
                                                       args.baseline), log)
        script = work / "gzip.lua"
        script.write_text(GZIP_LUA)
        for name, srv in list(servers.items()):
            try:
                if name in GZIP_SERVERS:
                    check_gzip(srv.port, contents[JS_LABEL])
                else:
                    for label, (fname, _) in FILES.items():
                        h.check_get(srv.port, f"/{fname}", contents[label])
            except (RuntimeError, OSError) as exc:
                missing[name] = f"failed the correctness check: {exc}"
                log(f"{name}: not measured ({missing[name]})")
                del servers[name]
        plan = _plan(servers, script)
        for _label, fname, names, lua in plan:
            for name in names:
                h.run_wrk(servers[name].url(f"/{fname}"), connections=args.connections,
                          duration=args.warmup, threads=args.threads, script=lua)
        for rnd in range(args.rounds):
            for label, fname, names, lua in plan:
                # One A B C pass per file and round; rounds repeat the whole cycle.
                one = h.alternate(names, 1, _measure(servers, fname, args, lua),
                                  progress=_progress(log, label, rnd, args.rounds))
                for name, samples in one.items():
                    results[label].setdefault(name, []).extend(samples)

    medians = {(label, n): h.median([r.requests_per_sec for r in rs])
               for label, per in results.items() for n, rs in per.items()}
    for label, per in results.items():
        if not per:
            continue
        print(f"### Static file, {label}, keep-alive, wrk -t{args.threads} "
              f"-c{args.connections} -d{args.duration}s, median of {args.rounds} "
              "alternating rounds\n")
        print(h.markdown_table(h.SUMMARY_HEADERS_MB, h.summary_rows(per, size=1)))
        print()
    ratios = ratio_rows(medians)
    if ratios:
        print(h.markdown_table(["file", "ratio (req/s)", "value", "target", "met"], ratios))
        print()
    for name, reason in missing.items():
        print(f"{name}: not measured ({reason})\n")
    print(f"_{note}; MiB/s is wrk's Transfer/sec (headers included)_")
    if args.json:
        path = h.write_json("static", {
            "args": vars(args), "machine": note, "missing": missing,
            "medians": {f"{k[0]} {k[1]}": v for k, v in medians.items()},
            "ratios": {f"{r[0]} {r[1]}": r[2] for r in ratios},
            "samples": {label: {n: [r.to_json() for r in rs] for n, rs in per.items()}
                        for label, per in results.items()}})
        log(f"wrote {path}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
