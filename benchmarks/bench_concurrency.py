"""Issue 12: keep-alive hello world at high concurrency, minihttp's pooled server vs uvicorn
and granian.

wrk runs at each of ``--connections`` (default -c16, -c128, -c512, -c1000) against
``servers/minihttp_hello.py --pool`` (``minihttp.eventloop.PooledHTTPServer``, access log off
like the other hello benchmarks), uvicorn (httptools + uvloop, a raw ASGI hello, access log
off) and granian (one worker, RSGI hello), all started once and measured in turn, round by
round: in each round every (level, server) pair once, so drift is spread over all of them.
Tables quote medians over the rounds, plus the *worst* round's p99 and the errors summed
over all rounds: a tail that shows up one run in three is a tail users meet (issue 12).
``--access-log`` adds ``minihttp-pool-log``: the same server with the access log on, as the
command line configures it (``minihttp`` logger at INFO on stderr, here a file).

Targets (issue 12) for every server at the highest level (-c1000): no socket error and no
non-2xx in any round, p99 <= 50 ms in every round, and median req/s >= 0.9 x the -c128
median. The descriptor limit is raised first (wrk and the servers inherit it): -c1000 needs
over 1,000 descriptors in wrk and in each server.

uvicorn, uvloop, httptools and granian are benchmark-only: ``--venv DIR`` (or
``MINIHTTP_BENCH_VENV``) names a virtual environment holding them (``pip install
'.[bench]'`` there); without it they are looked for in this interpreter. A competitor that
is not installed is reported as "not measured"; the others are still measured. See
benchmarks/README.md.

    python3 benchmarks/bench_concurrency.py [--venv DIR] [--connections 16,128,512,1000]
        [--duration 5] [--rounds 3] [--only minihttp-pool,granian] [--access-log]
        [--baseline DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks.bench_idle import raise_nofile

BODY = b"Hello World\n"
LEVELS = (16, 128, 512, 1000)
#: Issue 12's targets at the highest level.
P99_TARGET_S = 0.050
THROUGHPUT_TARGET = 0.9
THROUGHPUT_BASE = 128
#: Descriptors a server or wrk needs beyond one per connection (listener, pollers, logs...).
FD_RESERVE = 256
VENV_ENV = "MINIHTTP_BENCH_VENV"
#: Servers added by their own options (--access-log, --baseline), kept by ``--only``.
EXTRAS = ("minihttp-pool-log", "minihttp-pool-base")
NETSTAT = Path("/proc/net/netstat")

# --------------------------------------------------------------------------- competitors' apps
# uvicorn and granian import these from this module (``benchmarks.bench_concurrency:...``,
# run from the repository root); they are the smallest apps each interface allows, so the
# servers are measured, not a framework.
_HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"12")]


async def asgi_hello(scope: dict[str, Any], receive: Callable[[], Any],
                     send: Callable[[dict[str, Any]], Any]) -> None:
    """Raw ASGI 3 hello: 200, text/plain, ``Hello World\\n`` (lifespan ignored)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def rsgi_hello(scope: Any, proto: Any) -> None:
    """Granian RSGI hello: the same response, written in one call."""
    proto.response_bytes(200, [("content-type", "text/plain"), ("content-length", "12")],
                         BODY)


# The hello server with the access log on: minihttp_hello.py's handler without its
# ``log_message`` override, and the ``minihttp`` loggers set up exactly as the command line
# does (``minihttp.logs.configure``: the batching line writer on stderr). stderr is the
# harness's log file.
_LOGGING_SERVER = """\
import sys
sys.path.insert(0, {servers!r})
import minihttp_hello as m
from minihttp import logs
del m.HelloHandler.log_message
logs.configure()
m.run(m.main)
"""

# The hello server of another checkout (``--baseline DIR``): its own minihttp first on the
# path, ahead of the PYTHONPATH the harness sets, so a fix is measured against the tree
# before it in the same run.
_BASELINE_SERVER = """\
import runpy, sys
sys.path.insert(0, {root!r})
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name="__main__")
"""


@dataclasses.dataclass(frozen=True)
class Competitor:
    """A server of this benchmark: its spec, and the modules it needs in ``python``."""

    spec: h.ServerSpec
    needs: tuple[str, ...] = ()
    python: str = sys.executable


def competitors(venv_python: str, access_log: bool,
                baseline: Path | None = None) -> list[Competitor]:
    """Every server, in the order they are alternated."""
    out = [Competitor(h.ServerSpec("minihttp-pool", lambda p: h.python_server_argv(
        "minihttp_hello.py", "--port", str(p), "--pool")))]
    if baseline is not None:
        base = _BASELINE_SERVER.format(
            root=str(baseline), script=str(baseline / "benchmarks/servers/minihttp_hello.py"))
        out.append(Competitor(h.ServerSpec("minihttp-pool-base", lambda p: [
            sys.executable, "-c", base, "--port", str(p), "--pool"])))
    if access_log:
        code = _LOGGING_SERVER.format(servers=str(h.SERVERS_DIR))
        out.append(Competitor(h.ServerSpec("minihttp-pool-log", lambda p: [
            sys.executable, "-c", code, "--port", str(p), "--pool"])))
    out += [
        Competitor(h.ServerSpec("uvicorn", lambda p: [
            venv_python, "-m", "uvicorn", "benchmarks.bench_concurrency:asgi_hello",
            "--host", h.HOST, "--port", str(p), "--loop", "uvloop", "--http", "httptools",
            "--interface", "asgi3", "--lifespan", "off", "--no-access-log",
            "--log-level", "warning", "--backlog", "1024"], cwd=h.REPO_ROOT),
            needs=("uvicorn", "uvloop", "httptools"), python=venv_python),
        Competitor(h.ServerSpec("granian", lambda p: [
            venv_python, "-m", "granian", "--interface", "rsgi", "--host", h.HOST,
            "--port", str(p), "--workers", "1", "--http", "1", "--no-ws", "--no-access-log",
            "--log-level", "warning", "--backlog", "1024",
            "benchmarks.bench_concurrency:rsgi_hello"], cwd=h.REPO_ROOT),
            needs=("granian",), python=venv_python),
    ]
    return out


def venv_python(venv: str | None) -> str:
    """The interpreter that runs uvicorn and granian: ``VENV/bin/python``, or this one."""
    if not venv:
        return sys.executable
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--venv {venv}: no {python} (create it as benchmarks/README.md says)")
    return str(python)


def missing_modules(python: str, modules: Sequence[str]) -> list[str]:
    """The ``modules`` that ``python`` cannot import (one subprocess for all of them)."""
    if not modules:
        return []
    code = ("import importlib.util, sys\n"
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))")
    out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True,
                         timeout=60, check=False)
    if out.returncode != 0:
        return list(modules)
    return out.stdout.split()


# --------------------------------------------------------------------------- arguments
def parse_levels(text: str) -> list[int]:
    """``"16,128,1000"`` -> ``[16, 128, 1000]``: positive, distinct, in the given order."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of connection counts: {text!r}") from None
    if not levels or any(n < 1 for n in levels) or len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(
            f"want distinct positive connection counts, comma-separated: {text!r}")
    return levels


def parse_names(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (for ``--only``)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--only wants at least one server name")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line: the harness's wrk options, ``--connections`` as a list of levels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     conflict_handler="resolve")
    h.add_wrk_arguments(parser, connections=0)
    parser.add_argument("--connections", type=parse_levels, default=list(LEVELS),
                        help="comma-separated wrk -c levels (default 16,128,512,1000)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="wrk's per-request timeout, seconds (a slower request counts "
                             "as a timeout error)")
    parser.add_argument("--venv", default=os.environ.get(VENV_ENV),
                        help=f"virtual environment with uvicorn, uvloop, httptools and granian "
                             f"(default ${VENV_ENV}, else this interpreter)")
    parser.add_argument("--only", type=parse_names, default=None,
                        help="measure only these of minihttp-pool, uvicorn, granian "
                             "(comma-separated; --access-log and --baseline add theirs)")
    parser.add_argument("--access-log", action="store_true",
                        help="also measure minihttp-pool with its access log on")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also measure the pooled hello server of another checkout "
                             "(e.g. `git worktree add DIR main`) as minihttp-pool-base")
    parser.add_argument("--json", action="store_true", help="write benchmarks/results/*.json")
    return parser


def needed_fds(levels: Sequence[int]) -> int:
    """Descriptors wrk and each server need at the highest level."""
    return max(levels) + FD_RESERVE


def ensure_nofile(levels: Sequence[int]) -> int:
    """Raise the soft descriptor limit (inherited by wrk and the servers); exit if too low."""
    soft = raise_nofile()
    if soft < needed_fds(levels):
        raise SystemExit(
            f"-c{max(levels)} needs about {needed_fds(levels)} file descriptors per process, "
            f"but the hard limit (ulimit -Hn) allows {soft}: raise it (e.g. `ulimit -n 65536` "
            "as root, or LimitNOFILE=) or measure fewer connections.")
    return soft


# --------------------------------------------------------------------------- listen queues
def listen_counters(text: str) -> dict[str, int]:
    """``ListenOverflows`` and ``ListenDrops`` from ``/proc/net/netstat``'s TcpExt lines.

    The kernel counts a connection it could not queue because a listener's accept queue was
    full (overflow) and every SYN it dropped for a listener (drops), machine-wide.
    """
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    if len(lines) < 2:
        return {}
    values = dict(zip(lines[0][1:], lines[1][1:], strict=False))
    return {k: int(values[k]) for k in ("ListenOverflows", "ListenDrops") if k in values}


def read_listen_counters() -> dict[str, int]:
    """The machine's listen-queue counters now ({} where /proc/net/netstat is missing)."""
    try:
        return listen_counters(NETSTAT.read_text())
    except OSError:
        return {}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One wrk run at one level, with the listen-queue overflows counted meanwhile."""

    wrk: h.WrkResult
    listen_overflows: int

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``json.dump``."""
        return {**self.wrk.to_json(), "listen_overflows": self.listen_overflows}


def measure_once(url: str, connections: int, args: argparse.Namespace) -> Sample:
    """One wrk run, and how many more listen overflows the machine counted during it."""
    before = read_listen_counters().get("ListenOverflows", 0)
    result = h.run_wrk(url, connections=connections, duration=args.duration,
                       threads=args.threads, timeout_s=args.timeout)
    after = read_listen_counters().get("ListenOverflows", 0)
    return Sample(result, max(after - before, 0))


# --------------------------------------------------------------------------- tables
def _pct(result: h.WrkResult, p: str) -> float:
    return result.latency_percentiles.get(p, float("nan"))


def _worst(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return max(clean) if clean else float("nan")


TABLE_HEADERS = ["server", "req/s (median)", "min", "max", "p50 ms", "p99 ms",
                 "p99 worst ms", "connect", "read", "write", "timeout", "non-2xx",
                 "listen ovf"]


def level_rows(samples: Mapping[str, Sequence[Sample]]) -> list[list[object]]:
    """One row per server at one level: medians over rounds, the worst p99, error sums."""
    rows: list[list[object]] = []
    for name, runs in samples.items():
        results = [s.wrk for s in runs]
        rps = [r.requests_per_sec for r in results]
        row: list[object] = [
            name, h.median(rps), min(rps, default=float("nan")), max(rps, default=float("nan")),
            h.median([_pct(r, "50") for r in results]) * 1e3,
            h.median([_pct(r, "99") for r in results]) * 1e3,
            _worst([_pct(r, "99") for r in results]) * 1e3]
        for kind in ("connect", "read", "write", "timeout"):
            row.append(sum(r.socket_errors.get(kind, 0) for r in results))
        row.append(sum(r.non_2xx_3xx for r in results))
        row.append(sum(s.listen_overflows for s in runs))
        rows.append(row)
    return rows


TARGET_HEADERS = ["server", "errors at top", "p99 worst ms", "target", "req/s top / -c128",
                  "target", "met"]


def target_rows(results: Mapping[int, Mapping[str, Sequence[Sample]]]) -> list[list[object]]:
    """Issue 12's targets per server at the highest level measured (see the docstring).

    The throughput ratio needs the -c128 level; without it that column is n/a and only the
    error and p99 targets decide.
    """
    if not results:
        return []
    top = max(results)
    base = results.get(THROUGHPUT_BASE)
    rows: list[list[object]] = []
    for name, runs in results[top].items():
        wrk = [s.wrk for s in runs]
        errors = sum(r.errors for r in wrk)
        p99 = _worst([_pct(r, "99") for r in wrk])
        ratio = float("nan")
        if base is not None and name in base and top != THROUGHPUT_BASE:
            ratio = h.ratio(h.median([r.requests_per_sec for r in wrk]),
                            h.median([s.wrk.requests_per_sec for s in base[name]]))
        met = (errors == 0 and p99 == p99 and p99 <= P99_TARGET_S
               and (ratio != ratio or ratio >= THROUGHPUT_TARGET))
        rows.append([name, errors, p99 * 1e3, f"<= {P99_TARGET_S * 1e3:g}", ratio,
                     f">= {THROUGHPUT_TARGET:g}", "yes" if met else "NO"])
    return rows


def report(results: Mapping[int, Mapping[str, Sequence[Sample]]], args: argparse.Namespace,
           missing: Mapping[str, str], note: str) -> str:
    """The Markdown the script prints: one table per level, then the targets."""
    parts = [f"### Hello world, keep-alive, wrk -t{args.threads} -d{args.duration}s "
             f"--timeout {args.timeout:g}s, median of {args.rounds} alternating rounds"]
    for level in sorted(lv for lv, by in results.items() if by):  # nothing ran: no table
        parts.append(f"#### -c{level}\n\n"
                     + h.markdown_table(TABLE_HEADERS, level_rows(results[level])))
    targets = target_rows({lv: by for lv, by in results.items() if by})
    if targets:
        parts.append(f"#### Targets at -c{max(results)} (issue 12)\n\n"
                     + h.markdown_table(TARGET_HEADERS, targets))
    parts += [f"{name}: not measured ({reason})" for name, reason in missing.items()]
    parts.append(f"_{note}_")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- main
def _key(name: str, level: int) -> str:
    return f"{name} -c{level}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables; return 1 if a competitor was missing."""
    args = build_parser().parse_args(argv)
    h.require_wrk()
    levels: list[int] = args.connections
    nofile = ensure_nofile(levels)
    log = h.log
    python = venv_python(args.venv)
    if args.baseline is not None and not (
            args.baseline / "benchmarks" / "servers" / "minihttp_hello.py").exists():
        raise SystemExit(f"--baseline {args.baseline}: not a minihttp checkout")
    chosen = competitors(python, args.access_log,
                         args.baseline.resolve() if args.baseline is not None else None)
    if args.only is not None:
        unknown = set(args.only) - {c.spec.name for c in chosen} - set(EXTRAS)
        if unknown:
            raise SystemExit(f"--only: unknown server(s) {', '.join(sorted(unknown))}")
        keep = {*args.only, *EXTRAS}  # asked for by their own options
        chosen = [c for c in chosen if c.spec.name in keep]

    missing: dict[str, str] = {}
    specs = []
    for comp in chosen:
        absent = missing_modules(comp.python, comp.needs)
        if absent:
            missing[comp.spec.name] = (f"{', '.join(absent)} not installed in {comp.python} "
                                       "(see --venv in benchmarks/README.md)")
            log(f"{comp.spec.name}: not measured ({missing[comp.spec.name]})")
        else:
            specs.append(comp.spec)

    note = f"{h.machine_note()}, ulimit -n {nofile}"
    with contextlib.ExitStack() as stack:
        servers, not_started = h.start_all(stack, specs, log)
        missing.update(not_started)
        for name, srv in list(servers.items()):
            try:
                h.check_get(srv.port, "/", BODY)
            except (RuntimeError, OSError) as exc:
                missing[name] = f"failed the correctness check: {exc}"
                log(f"{name}: not measured ({missing[name]})")
                del servers[name]
        for srv in servers.values():
            h.run_wrk(srv.url(), connections=min(levels), duration=args.warmup,
                      threads=args.threads)
        pairs = {_key(n, c): (n, c) for c in levels for n in servers}
        samples: dict[str, list[Sample]] = {k: [] for k in pairs}

        def measure(key: str) -> h.WrkResult:
            name, level = pairs[key]
            sample = measure_once(servers[name].url(), level, args)
            samples[key].append(sample)
            return sample.wrk

        h.alternate(list(pairs), args.rounds, measure, progress=log)

    results = {c: {n: samples[_key(n, c)] for n in servers} for c in levels}
    print(report(results, args, missing, note))
    if args.json:
        path = h.write_json("concurrency", {
            "args": vars(args), "machine": note, "missing": missing,
            "targets": target_rows(results),
            "samples": {str(c): {n: [s.to_json() for s in runs] for n, runs in by.items()}
                        for c, by in results.items()}})
        log(f"wrote {path}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
