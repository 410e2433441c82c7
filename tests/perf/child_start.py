"""How long an engine child takes to start: a fresh spawned interpreter vs dqd's fork server.

Each child imports what the engine imports (dqd.pipeline.analyse) and reports
back; printed: seconds per child for each start method, the first fork-server
child (which starts the server and pays its preload once) apart.

    .venv/bin/python -m tests.perf.child_start [--children 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from multiprocessing.queues import SimpleQueue

from dqd.pipeline.isolate import PRELOAD


def _child(queue: SimpleQueue[int]) -> None:
    import dqd.pipeline.analyse  # noqa: F401  (what every engine child needs)

    queue.put(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=8)
    args = parser.parse_args()
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(PRELOAD)
    for method, context in (("spawn", multiprocessing.get_context("spawn")), ("forkserver", server)):
        seconds = []
        for _ in range(args.children):
            queue = context.SimpleQueue()
            started = time.perf_counter()
            process = context.Process(target=_child, args=(queue,))
            process.start()
            queue.get()
            process.join()
            seconds.append(time.perf_counter() - started)
        print(
            f"{method:10s} first {seconds[0]:.3f} s, then median {statistics.median(seconds[1:]):.3f} s "
            f"(min {min(seconds[1:]):.3f}, max {max(seconds[1:]):.3f}) over {args.children - 1} children"
        )


if __name__ == "__main__":
    main()
