"""A command run several times in a row while every core is kept busy by
another load: how the tests show they hold on a loaded machine (no
wall-clock asserts, nothing that needs a quiet core).

    python -m tests.under_load [--runs 3] [--load N] -- COMMAND ...

Starts N busy processes (default: one per core) at normal priority, runs
COMMAND --runs times one after the other, prints each run's exit status and
wall time, then stops the busy processes it started. Exit status: 0 if every
run passed, else the first failing run's. `make test-loaded` runs `make
test` three times this way.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time


def _spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.under_load", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument("--runs", type=int, default=3, help="how many times to run the command (3)")
    ap.add_argument("--load", type=int, default=os.cpu_count() or 1,
                    help="busy processes beside it (default: one per core)")  # fmt: skip
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    ctx = mp.get_context("spawn")
    load = [ctx.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for p in load:
        p.start()
    print(f"under_load: {args.load} busy processes, {args.runs} runs of: {' '.join(cmd)}",
          flush=True)  # fmt: skip
    first_failure = 0
    walls: list[float] = []
    try:
        for i in range(args.runs):
            t0 = time.monotonic()
            rc = subprocess.call(cmd)
            walls.append(time.monotonic() - t0)
            print(f"under_load: run {i + 1}/{args.runs}: exit {rc}, {walls[-1]:.0f} s wall",
                  flush=True)  # fmt: skip
            if rc and not first_failure:
                first_failure = rc
    finally:
        for p in load:
            p.terminate()
        for p in load:
            p.join(timeout=5)
    print(f"under_load: {len(walls)} runs, wall {', '.join(f'{w:.0f}' for w in walls)} s; "
          f"{'all passed' if not first_failure else f'failed (exit {first_failure})'}")  # fmt: skip
    return first_failure


if __name__ == "__main__":
    sys.exit(main())
