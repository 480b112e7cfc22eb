"""Smoke test of benchmarks/bench_wsgi.py (no wrk, no timing): it runs, and its parts fit.

Lives here rather than in tests/test_benchmarks_smoke.py only because this branch may touch
tests/wsgi/ alone; the coordinator may move it there.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

from benchmarks import bench_wsgi  # noqa: E402


def test_help() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_wsgi.py"), "--help"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    for option in ("--duration", "--rounds", "--hello", "--blocking", "--cpu"):
        assert option in out.stdout


def test_every_competitor_binds_the_port_it_is_given() -> None:
    specs = bench_wsgi.flask_specs()
    assert [s.name for s in specs] == ["minihttp", "minihttp-w2", "waitress", "gunicorn",
                                       "cheroot", "uvicorn", "granian"]
    for spec in specs + bench_wsgi.hello_specs():
        argv = " ".join(spec.argv(43210))
        assert "43210" in argv, spec.name


def test_ratio_rows_flag_missed_targets() -> None:
    rows = bench_wsgi.ratio_rows({"minihttp": 7000.0, "waitress": 1000.0,
                                  "minihttp-w2": 9000.0, "granian": 10000.0})
    assert [r[0] for r in rows] == ["minihttp / waitress", "minihttp-w2 / granian"]
    assert rows[0][3] == "yes" and rows[1][3] == "NO"
    assert math.isclose(float(rows[0][1]), 7.0)  # type: ignore[arg-type]


def test_cpu_mode_runs() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_wsgi.py"), "--cpu",
                          "--rounds", "1"], capture_output=True, text=True, timeout=120,
                         check=False, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "WSGI hello (gateway)" in out.stdout


def test_icount_wsgi_serves_both_hellos() -> None:
    """benchmarks/icount_wsgi.py (callgrind's driver for the gateway's cost) serves N
    requests of each hello, repeated or alternating, and checks the first answer."""
    for kind in ("wsgi", "handler"):
        for vary in ([], ["--vary", "path"], ["--vary", "fields"]):
            out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "icount_wsgi.py"),
                                  kind, "7", *vary], capture_output=True, text=True,
                                 timeout=60, check=False, cwd=REPO)
            assert out.returncode == 0, (kind, vary, out.stderr)
            assert "Traceback" not in out.stderr
