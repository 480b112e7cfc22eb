"""Shared machinery for the benchmark scripts: servers as subprocesses, wrk, medians, tables.

Why a harness at all: speed figures on a 2-core, noisy machine are only worth quoting when the
competitors run in the same session, side by side, alternated (A B C A B C ...) and repeated,
with medians quoted and the result given as a ratio. Every script shares that discipline, so it
lives here once. The rules the harness enforces:

- Only loopback: servers bind 127.0.0.1, wrk targets 127.0.0.1.
- Every server is started in its own process group and the whole group is killed on exit
  (``try/finally`` via a context manager), so a crashed benchmark leaves nothing behind.
- A server must answer one correct request before it is measured, so a broken server cannot
  produce a fast (and meaningless) figure; wrk's socket errors and non-2xx/3xx counts are kept
  with every sample and shown in the tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "REPO_ROOT",
    "RESULTS_DIR",
    "ServerProcess",
    "WrkError",
    "WrkResult",
    "add_baseline_argument",
    "alternate",
    "baseline_spec",
    "check_and_alternate",
    "check_get",
    "free_port",
    "machine_note",
    "markdown_table",
    "median",
    "parse_bytes",
    "parse_count",
    "parse_duration",
    "parse_wrk",
    "python_server_argv",
    "ratio",
    "require_wrk",
    "run_wrk",
    "start_server",
    "temp_dir",
    "write_json",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SERVERS_DIR = BENCH_DIR / "servers"
HOST = "127.0.0.1"


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something the parser does not understand."""


# --------------------------------------------------------------------------- wrk output parsing
# wrk prints numbers through its own formatters (src/units.c): times as "812.00us", "1.20ms",
# "2.00s", "1.00m"; byte sizes as "386.78KB" (binary multiples, 1 KB = 1024 B); counts as
# "1.94k" (decimal multiples). The tables below are that notation, as data.

_TIME_UNITS: Mapping[str, float] = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTE_UNITS: Mapping[str, int] = {
    "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5,
}
_COUNT_UNITS: Mapping[str, float] = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

_NUM_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def _split(text: str) -> tuple[float, str]:
    m = _NUM_UNIT.match(text)
    if m is None:
        raise WrkError(f"not a wrk number: {text!r}")
    return float(m.group(1)), m.group(2)


def parse_duration(text: str) -> float:
    """``"1.20ms"`` -> 0.0012 (seconds)."""
    value, unit = _split(text)
    if unit not in _TIME_UNITS:
        raise WrkError(f"unknown wrk time unit in {text!r}")
    return value * _TIME_UNITS[unit]


def parse_bytes(text: str) -> float:
    """``"386.78KB"`` -> 396062.72 (bytes; wrk's KB/MB are binary)."""
    value, unit = _split(text)
    if unit not in _BYTE_UNITS:
        raise WrkError(f"unknown wrk size unit in {text!r}")
    return value * _BYTE_UNITS[unit]


def parse_count(text: str) -> float:
    """``"1.94k"`` -> 1940.0."""
    value, unit = _split(text)
    if unit not in _COUNT_UNITS:
        raise WrkError(f"unknown wrk count unit in {text!r}")
    return value * _COUNT_UNITS[unit]


@dataclasses.dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, in SI units (seconds, bytes)."""

    requests: int
    duration: float
    bytes_read: float
    requests_per_sec: float
    transfer_per_sec: float
    latency_avg: float
    latency_max: float
    #: Percentile ("50", "75", "90", "99") -> seconds; empty without ``--latency``.
    latency_percentiles: dict[str, float]
    socket_errors: dict[str, int]
    non_2xx_3xx: int

    @property
    def errors(self) -> int:
        """All failures wrk counted: socket errors of every kind plus non-2xx/3xx answers."""
        return sum(self.socket_errors.values()) + self.non_2xx_3xx

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``json.dump``."""
        return dataclasses.asdict(self)


_RE_SUMMARY = re.compile(r"^\s*(\d+) requests in ([0-9.]+\w+), ([0-9.]+\w+) read\s*$", re.M)
_RE_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.M)
_RE_TPS = re.compile(r"^Transfer/sec:\s+([0-9.]+\w+)\s*$", re.M)
_RE_LATENCY = re.compile(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+\s*$", re.M)
_RE_PCT = re.compile(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", re.M)
_RE_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_RE_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk 4.x's human-readable report (as printed with ``--latency``)."""
    summary = _RE_SUMMARY.search(text)
    rps = _RE_RPS.search(text)
    tps = _RE_TPS.search(text)
    if summary is None or rps is None or tps is None:
        raise WrkError(f"could not parse wrk output:\n{text}")
    latency = _RE_LATENCY.search(text)
    socket_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    sock = _RE_SOCKET.search(text)
    if sock is not None:
        socket_errors = dict(zip(socket_errors, map(int, sock.groups()), strict=True))
    non2xx = _RE_NON2XX.search(text)
    return WrkResult(
        requests=int(summary.group(1)),
        duration=parse_duration(summary.group(2)),
        bytes_read=parse_bytes(summary.group(3)),
        requests_per_sec=float(rps.group(1)),
        transfer_per_sec=parse_bytes(tps.group(1)),
        # wrk prints "-nanus" style garbage when no request completed; treat as missing.
        latency_avg=_safe_duration(latency.group(1)) if latency else float("nan"),
        latency_max=_safe_duration(latency.group(3)) if latency else float("nan"),
        latency_percentiles={p: parse_duration(v) for p, v in _RE_PCT.findall(text)},
        socket_errors=socket_errors,
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
    )


def _safe_duration(text: str) -> float:
    try:
        return parse_duration(text)
    except WrkError:
        return float("nan")


# --------------------------------------------------------------------------- running wrk
def log(msg: str) -> None:
    """Progress for the person watching: stderr, so stdout stays the Markdown tables."""
    print(msg, file=sys.stderr, flush=True)


def add_wrk_arguments(parser: Any, *, connections: int,
                      warmup_help: str = "seconds, per server") -> None:
    """The wrk options every load benchmark shares, with one meaning everywhere."""
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (>= 3)")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=1, help=warmup_help)


def require_wrk() -> str:
    """Path to wrk, or exit with a message saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found on PATH: install it with `apt-get install wrk` "
                         "(Debian/Ubuntu) and run again.")
    return path


def run_wrk(url: str, *, connections: int, duration: int, threads: int = 2,
            script: str | Path | None = None, timeout_s: float = 2.0) -> WrkResult:
    """Run ``wrk -tT -cN -dDs --latency [-s script] URL`` and parse its report.

    ``timeout_s`` is wrk's own per-request timeout: a request slower than that counts as a
    timeout error instead of stalling the measurement.
    """
    wrk = require_wrk()
    if duration < 1 or duration != int(duration):
        raise ValueError(f"wrk takes whole seconds, not {duration!r}")
    threads = max(1, min(threads, connections))  # wrk refuses threads > connections
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s",
            f"--timeout={timeout_s:g}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=duration + 30.0)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise WrkError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return parse_wrk(proc.stdout)


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_accepting(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before accepting")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not accept on port {port} "
                                   f"within {timeout:g}s") from None
            time.sleep(0.05)


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # Kill the group even if the leader is gone: it may have left children behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


@dataclasses.dataclass
class ServerProcess:
    """A running server: its name, port, and the subprocess (own process group)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path``."""
        return f"http://{HOST}:{self.port}{path}"

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's stdout+stderr, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group ``pgid`` (Linux
    ``/proc``; 0.0 elsewhere). A server runs in its own group (see :func:`start_server`), so
    this is the server with its pre-forked workers, without wrk."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # Fields after the command name (which may hold spaces) in parentheses: state is
        # field 3, pgrp field 5, utime field 14, stime field 15 (proc(5)).
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def python_server_argv(script: str, *args: str, repo: Path | None = None) -> list[str]:
    """``[python, benchmarks/servers/<script>, *args]`` with this interpreter (the script of
    checkout ``repo`` when given, for A/B runs against another tree)."""
    servers = SERVERS_DIR if repo is None else repo / "benchmarks" / "servers"
    return [sys.executable, str(servers / script), *args]


def add_baseline_argument(parser: Any) -> None:
    """``--baseline DIR``: also measure minihttp from another checkout (A/B in one run)."""
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another checkout of minihttp (e.g. a git worktree of the commit "
                             "before a change): its servers run beside this tree's, suffixed @base")


def baseline_spec(spec: ServerSpec, repo: Path, script: str, *args: str) -> ServerSpec:
    """``spec``'s twin from checkout ``repo``: same server script and arguments, other tree."""
    return ServerSpec(f"{spec.name}@base", lambda p: python_server_argv(
        script, *[a.format(port=p) for a in args], repo=repo), spec.cwd, repo)


@contextlib.contextmanager
def start_server(name: str, argv: Sequence[str], port: int, *, cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, ready_timeout: float = 15.0,
                 pythonpath: Path | None = None) -> Iterator[ServerProcess]:
    """Start ``argv`` (which must listen on 127.0.0.1:``port``), wait until it accepts.

    The server runs in a new session (its own process group) with the repository root (or
    ``pythonpath``: another checkout, for A/B runs) first on ``PYTHONPATH`` so ``import
    minihttp`` works without installing; its output goes to a log file in a temporary
    directory that is removed on exit, together with the whole group.
    """
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(pythonpath or REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    full_env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as logdir:
        log_path = Path(logdir) / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        server = ServerProcess(name, port, proc, log_path)
        try:
            try:
                _wait_accepting(port, proc, ready_timeout)
            except RuntimeError as exc:
                raise RuntimeError(f"{name}: {exc}\n--- server output ---\n"
                                   f"{server.log_tail()}") from None
            yield server
        finally:
            _kill_group(proc)


def check_get(port: int, path: str, expect_body: bytes | None = None, *,
              host_header: str | None = None, connect_port: int | None = None,
              timeout: float = 5.0, keep_alive: bool = True) -> None:
    """GET ``path`` twice on one keep-alive connection; fail unless 200 and the right body.

    Two requests on one connection, because a server that closes after each response would
    make wrk measure connection setup instead of keep-alive serving.
    ``connect_port`` lets the request go through a proxy while ``path`` is absolute-form.
    ``keep_alive=False``: one request only, for a competitor known to close after each
    response (tinyproxy does so with clients; wrk then reconnects, which it is charged for).
    """
    conn = http.client.HTTPConnection(HOST, connect_port or port, timeout=timeout)
    try:
        for attempt in range(2 if keep_alive else 1):
            headers = {"Host": host_header} if host_header else {}
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path} on port {port}: status {resp.status}")
            if expect_body is not None and body != expect_body:
                raise RuntimeError(f"GET {path} on port {port}: unexpected body "
                                   f"({len(body)} bytes, wanted {len(expect_body)})")
            if attempt == 0 and resp.will_close:
                raise RuntimeError(f"GET {path} on port {port}: server closes the connection "
                                   "after each response (no keep-alive)")
    finally:
        conn.close()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory removed on exit, whatever happens."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield Path(d)


# --------------------------------------------------------------------------- statistics
def median(values: Sequence[float]) -> float:
    """Median of the samples; NaN when there are none."""
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is zero or either side is NaN (no division errors in tables)."""
    if b == 0 or a != a or b != b:
        return float("nan")
    return a / b


def alternate(names: Sequence[str], rounds: int,
              measure: Callable[[str], WrkResult],
              progress: Callable[[str], None] | None = None) -> dict[str, list[WrkResult]]:
    """Measure each competitor once per round, in turn (A B C A B C ...), ``rounds`` times.

    Alternation spreads slow drifts of a noisy machine (other jobs, thermal limits) over all
    competitors instead of charging them to whichever ran last.
    """
    out: dict[str, list[WrkResult]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names:
            result = measure(name)
            out[name].append(result)
            if progress is not None:
                progress(f"round {r + 1}/{rounds} {name}: {result.requests_per_sec:,.0f} req/s"
                         + (f", {result.errors} errors" if result.errors else ""))
    return out


# --------------------------------------------------------------------------- output
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; numbers are right-aligned."""
    cells = [[_cell(c) for c in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) if rows else False
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    body = ["| " + " | ".join(c.rjust(w) if num else c.ljust(w)
                              for c, w, num in zip(r, widths, numeric, strict=True)) + " |"
            for r in cells]
    return "\n".join([line, rule, *body])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_note() -> str:
    """One line on the conditions of the run: cores, load, wrk, Python (noise context)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{os.cpu_count()} cores, load average {load[0]:.2f} at start, "
            f"Python {sys.version.split()[0]}, {_dt.datetime.now().isoformat(timespec='seconds')}")


def write_json(name: str, data: Mapping[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``data`` to ``benchmarks/results/<name>-<timestamp>.json`` (gitignored)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


# --------------------------------------------------------------------------- script plumbing
@dataclasses.dataclass(frozen=True)
class ServerSpec:
    """How to start one competitor: a name, its argv (built from a port), optional cwd, and
    optionally another checkout of minihttp to import (``pythonpath``, for A/B runs)."""

    name: str
    argv: Callable[[int], list[str]]
    cwd: Path | None = None
    pythonpath: Path | None = None


def start_all(stack: contextlib.ExitStack, specs: Sequence[ServerSpec],
              log: Callable[[str], None]) -> tuple[dict[str, ServerProcess], dict[str, str]]:
    """Start every competitor on ``stack`` (stopped when it closes).

    Returns the running servers and, for those that could not start, the reason: a benchmark
    still measures the others (e.g. stdlib vs floor while minihttp is being written).
    """
    running: dict[str, ServerProcess] = {}
    missing: dict[str, str] = {}
    for spec in specs:
        port = free_port()
        try:
            running[spec.name] = stack.enter_context(
                start_server(spec.name, spec.argv(port), port, cwd=spec.cwd,
                             pythonpath=spec.pythonpath))
        except (RuntimeError, OSError, SystemExit) as exc:
            reason = str(exc).strip().splitlines()
            missing[spec.name] = reason[-1] if reason else type(exc).__name__
            log(f"{spec.name}: not measured ({missing[spec.name]})")
    return running, missing


def check_and_alternate(
    servers: dict[str, ServerProcess], missing: dict[str, str], args: Any,
    body: bytes, path: str = "/", *,
    check: Callable[[str, ServerProcess], None] | None = None,
    measure: Callable[[str, int, int], WrkResult] | None = None,
) -> dict[str, list[WrkResult]]:
    """The measuring part every wrk script shares: drop (into ``missing``) each server that
    fails the correctness check on ``path``, warm the rest up (``args.warmup`` seconds), then
    alternate wrk over them for ``args.rounds`` rounds (``args.connections``,
    ``args.duration``, ``args.threads``).

    ``check(name, server)`` replaces the plain GET check and ``measure(name, connections,
    duration)`` the plain wrk run, for scripts whose competitors are not origin servers
    (bench_proxy.py: absolute-form targets through a forward proxy)."""
    if check is None:
        def check(name: str, srv: ServerProcess) -> None:
            check_get(srv.port, path, body)
    if measure is None:
        def measure(name: str, connections: int, duration: int) -> WrkResult:
            return run_wrk(servers[name].url(), connections=connections, duration=duration,
                           threads=args.threads)
    for name, srv in list(servers.items()):
        try:
            check(name, srv)
        except (RuntimeError, OSError) as exc:
            missing[name] = f"failed the correctness check: {exc}"
            log(f"{name}: not measured ({missing[name]})")
            del servers[name]
    for name in servers:
        measure(name, args.connections, args.warmup)
    run = measure
    return alternate(list(servers), args.rounds,
                     lambda n: run(n, args.connections, args.duration), progress=log)


def summary_rows(results: Mapping[str, Sequence[WrkResult]],
                 size: float | None = None) -> list[list[object]]:
    """Table rows: name, median req/s, min, max, [MiB/s], median p50 and p99 latency, errors."""
    rows: list[list[object]] = []
    for name, samples in results.items():
        rps = [s.requests_per_sec for s in samples]
        row: list[object] = [name, median(rps), min(rps, default=float("nan")),
                             max(rps, default=float("nan"))]
        if size is not None:
            row.append(median([s.transfer_per_sec for s in samples]) / 2**20)
        row += [median([s.latency_percentiles.get("50", float("nan")) for s in samples]) * 1e3,
                median([s.latency_percentiles.get("99", float("nan")) for s in samples]) * 1e3,
                sum(s.errors for s in samples)]
        rows.append(row)
    return rows


SUMMARY_HEADERS = ["server", "req/s (median)", "min", "max", "p50 ms", "p99 ms", "errors"]
SUMMARY_HEADERS_MB = ["server", "req/s (median)", "min", "max", "MiB/s", "p50 ms", "p99 ms",
                      "errors"]
