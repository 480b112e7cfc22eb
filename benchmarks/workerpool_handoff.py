"""Cost of handing one task to a WorkerPool whose workers are idle, one task at a time.

A pooled server hands a request to a worker whenever it cannot serve it inline (TLS,
``inline = False``, a handler that lost the loop). With many idle workers a careless
condition variable wakes all of them per task (a thundering herd); this measures the
wall and CPU time per submit -> run -> done round trip with ``--workers`` idle workers.

    python3 benchmarks/workerpool_handoff.py [--workers 32] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minihttp.socketserver import WorkerPool


def measure(workers: int, tasks: int) -> tuple[float, float]:
    """Seconds of wall and process CPU time per task, all workers started and idle."""
    pool = WorkerPool(workers, workers)
    done = threading.Semaphore(0)
    try:
        for _ in range(workers * 2):  # start every worker
            pool.submit(done.release)
        for _ in range(workers * 2):
            done.acquire()
        time.sleep(0.2)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(tasks):
            pool.submit(done.release)
            done.acquire()
        return (time.perf_counter() - wall) / tasks, (time.process_time() - cpu) / tasks
    finally:
        pool.shutdown(wait=True)


def main() -> None:
    """Print the per-task figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=20000)
    args = parser.parse_args()
    wall, cpu = measure(args.workers, args.tasks)
    print(f"WorkerPool hand-off with {args.workers} idle workers: {wall * 1e6:.1f} us wall, "
          f"{cpu * 1e6:.1f} us CPU per task ({args.tasks} tasks, one at a time)")


if __name__ == "__main__":
    main()
