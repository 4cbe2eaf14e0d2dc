"""Running mutants: a pool of workers (hil/mutation/worker.py) on this
machine's cores, or batches on a Dask distributed cluster, as campaigns do
(hil/campaign/executor.py).

A job is plain data and `run_batch` a plain function, so both executors run
the same thing. Each worker has its own copy of firmware/, build and
results directories. A Dask worker runs the tests of its own heatrig tree:
every job carries the identity of the tree that planned it (its firmware,
simulator, host code and tests), and a worker with another tree refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hil.paths import FIRMWARE_DIR, ROOT

_TREE_DIRS = ("firmware", "sim", "hil", "tests")


class MutationError(RuntimeError):
    """Mutation testing cannot run; the message says what to do."""


@dataclass(frozen=True)
class Job:
    index: int
    module: str
    key: str  # the mutant's key; "" for a module's baseline run
    source: str | None  # the mutated module; None: as it is
    tests: tuple[str, ...]
    timeout_s: float
    tree: str
    trace: bool = False  # a baseline: record which lines each test runs


@dataclass
class Outcome:
    index: int
    module: str
    key: str
    status: str  # killed | survived | timeout | invalid | error
    test: str = ""  # the first test that failed
    detail: str = ""
    wall_s: float = 0.0
    coverage: dict[str, Any] | None = None  # a traced baseline's: order, lines, opaque


def tree_id(root: Path = ROOT) -> str:
    """The sources that decide a mutant's fate: firmware, simulator, host, tests."""
    h = hashlib.sha256()
    for d in _TREE_DIRS:
        for p in sorted((root / d).rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class Worker:
    """One worker process with its own firmware copy and scratch directories."""

    def __init__(self, firmware: Path = FIRMWARE_DIR):
        self.dir = Path(tempfile.mkdtemp(prefix="heatrig-mutation-"))
        fw = self.dir / "firmware"
        shutil.copytree(firmware, fw, ignore=shutil.ignore_patterns("__pycache__"))
        env = {
            **os.environ,
            "HEATRIG_FIRMWARE_DIR": str(fw),
            "HEATRIG_BUILD_DIR": str(self.dir / "build"),
            "HEATRIG_RESULTS_DIR": str(self.dir / "results"),
            "HEATRIG_MUTATION_SCRATCH": str(self.dir),
            # bytecode cached apart from the tree (the worker gives each version
            # of a mutated module a time stamp of its own: no stale bytecode)
            "PYTHONPYCACHEPREFIX": str(self.dir / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hil.mutation.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def run(self, job: Job) -> Outcome:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        msg: dict[str, Any] = {"module": job.module, "source": job.source, "tests": list(job.tests)}
        msg |= {"timeout_s": job.timeout_s, "trace": job.trace}
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise MutationError(f"a mutation worker died (exit code {self.proc.poll()})")
        got: dict[str, Any] = json.loads(line)
        return Outcome(job.index, job.module, job.key, **got)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_batch(jobs: list[Job]) -> list[Outcome]:
    """Run jobs in one worker of this tree (what a Dask task does)."""
    if not jobs:
        return []
    mine = tree_id()
    if jobs[0].tree != mine:
        raise MutationError(
            f"this worker's heatrig tree is {mine}, the jobs come from {jobs[0].tree}: "
            "install the same heatrig tree on every Dask worker"
        )
    w = Worker()
    try:
        return [w.run(j) for j in jobs]
    finally:
        w.close()


def execute(
    jobs: list[Job], *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[Outcome]:
    """Every job's outcome, as each finishes."""
    if scheduler:
        yield from _dask(jobs, scheduler)
    else:
        yield from _local(jobs, local_workers(workers))


def local_workers(workers: int | None) -> int:
    return max(1, workers or os.cpu_count() or 1)


def _local(jobs: list[Job], n: int) -> Iterator[Outcome]:
    todo: queue.Queue[Job | None] = queue.Queue()
    done: queue.Queue[Outcome | BaseException] = queue.Queue()
    for j in jobs:
        todo.put(j)
    n = min(n, len(jobs))
    for _ in range(n):
        todo.put(None)

    def serve() -> None:
        w = None
        try:
            w = Worker()
            while (job := todo.get()) is not None:
                done.put(w.run(job))
        except BaseException as e:  # reported by the consumer
            done.put(e)
        finally:
            if w is not None:
                w.close()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for _ in range(len(jobs)):
        got = done.get()
        if isinstance(got, BaseException):
            raise got
        yield got
    for t in threads:
        t.join()


def _dask(jobs: list[Job], address: str) -> Iterator[Outcome]:
    from hil.campaign.executor import dask_map

    for batch in dask_map(run_batch, list(_batches(jobs, 8)), address, MutationError):
        yield from batch


def _batches(jobs: Iterable[Job], size: int) -> Iterator[list[Job]]:
    batch: list[Job] = []
    for j in jobs:
        batch.append(j)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def as_json(o: Outcome) -> dict[str, Any]:
    return asdict(o)
