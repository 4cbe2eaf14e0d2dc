"""The search: hypothesis draws scenarios (generate.py), each runs on the
simulator and is judged by the invariants (invariants.py); the first one
that violates any is shrunk by hypothesis to the smallest scenario that
still violates the same invariant, and written as a scenario file with its
curve.

The campaign is split into chunks, each a hypothesis search of its own with
a seed derived from the campaign's; chunks run on this machine's cores or on
a Dask cluster (hil/campaign/executor.py's way). The same campaign seed and
runs give the same scenarios, whatever ran them.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from hil.safety import generate, invariants
from hil.scenarios import scenario
from hil.simulator import runner

CHUNK = 50  # scenarios per hypothesis search: the plan is the same whatever runs it


@dataclass(frozen=True)
class Chunk:
    campaign_seed: int
    index: int
    runs: int
    shrink: bool = True
    lengths: tuple[str, ...] = generate.LENGTHS


@dataclass
class Summary:
    """One scenario as the campaign counts it."""

    key: str  # the scenario file's hash: the same scenario drawn twice counts once in `distinct`
    tags: tuple[str, ...]
    exercised: tuple[str, ...]
    violated: tuple[str, ...]
    puffs: dict[str, int]
    sim_s: float
    wall_s: float


@dataclass
class CounterExample:
    toml: str
    violations: dict[str, list[str]]
    first_toml: str  # the scenario that failed first, before shrinking
    shrink_runs: int
    found_after: int  # scenarios run before it
    search_s: float  # from the chunk's start to the shrunk example
    chunk: int


@dataclass
class Flake:
    """A scenario that violated an invariant once and not when run again: the
    simulation is deterministic, so the rig (a host under load, a process
    killed) is at fault, not the device. Reported, not shrunk."""

    toml: str
    violations: dict[str, list[str]]
    chunk: int


@dataclass
class ChunkResult:
    index: int
    scenarios: list[Summary] = field(default_factory=list)
    counterexample: CounterExample | None = None
    flakes: list[Flake] = field(default_factory=list)
    wall_s: float = 0.0
    tree: str = ""


class Violation(AssertionError):
    def __init__(self, toml: str, verdict: invariants.Verdict):
        super().__init__("; ".join(f"{k}: {w[0]}" for k, w in verdict.violations.items()))
        self.toml = toml
        self.verdict = verdict

    def __reduce__(self) -> tuple[type[Violation], tuple[str, invariants.Verdict]]:
        return Violation, (self.toml, self.verdict)


def _violation(e: BaseException) -> Violation | None:
    """The Violation hypothesis raised, perhaps inside a group (a flaky or
    multiple failure)."""
    if isinstance(e, Violation):
        return e
    for inner in getattr(e, "exceptions", ()):
        found = _violation(inner)
        if found is not None:
            return found
    return None


def chunk_seed(campaign_seed: int, index: int) -> int:
    h = hashlib.sha256(f"heatrig safety {campaign_seed} {index}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def run_one(toml: str) -> tuple[invariants.Verdict, float, float]:
    """Simulate one scenario file's text and judge it: (verdict, simulated s, wall s)."""
    t0 = time.perf_counter()
    sc = scenario.parse(toml, Path("<generated>"))
    try:
        res = runner.run(sc)
    except runner.SimError as e:
        return invariants.check(sc, None, str(e).splitlines()[0]), 0.0, time.perf_counter() - t0
    return invariants.check(sc, res), res.sim_s, time.perf_counter() - t0


def run_chunk(chunk: Chunk) -> ChunkResult:
    """One hypothesis search: chunk.runs scenarios, and the first violation
    shrunk (while its invariant still fails)."""
    from hil.campaign.executor import tree_id

    out = ChunkResult(chunk.index, tree=tree_id())
    t0 = time.perf_counter()
    first: dict[str, Any] = {}
    shrink_runs = [0]
    seen: dict[str, tuple[invariants.Verdict, float, float]] = {}

    phases = [Phase.generate, Phase.shrink] if chunk.shrink else [Phase.generate]

    @seed(chunk_seed(chunk.campaign_seed, chunk.index))
    @settings(
        max_examples=chunk.runs,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
        verbosity=Verbosity.quiet,
    )
    @given(generate.generated(chunk.lengths))
    def search(g: generate.Generated) -> None:
        key = hashlib.sha256(g.toml.encode()).hexdigest()[:16]
        if key not in seen:  # hypothesis may draw one scenario twice: it runs once
            seen[key] = run_one(g.toml)
            if seen[key][0].violations and not first:  # the first of a kind: run it again
                again = run_one(g.toml)
                if not again[0].violations:
                    out.flakes.append(Flake(g.toml, seen[key][0].violations, chunk.index))
                    seen[key] = again
        v, sim_s, wall_s = seen[key]
        if first:  # shrinking: only the first violation's invariants count
            shrink_runs[0] += 1
        else:
            out.scenarios.append(
                Summary(
                    key,
                    g.tags + tuple(sorted(v.observed)),
                    tuple(sorted(v.exercised)),
                    tuple(sorted(v.violations)),
                    dict(v.puffs),
                    sim_s,
                    wall_s,
                )
            )
            if v.violations:
                first.update(names=set(v.violations), toml=g.toml, at=len(out.scenarios))
        if v.violations.keys() & first.get("names", set()):
            raise Violation(
                g.toml, v
            )  # one place: hypothesis tells failures apart by where they rise

    try:
        search()
    except Exception as raised:
        e = _violation(raised)
        if e is None:
            raise
        out.counterexample = CounterExample(
            toml=e.toml,
            violations=e.verdict.violations,
            first_toml=first.get("toml", e.toml),
            shrink_runs=shrink_runs[0],
            found_after=first.get("at", 0),
            search_s=time.perf_counter() - t0,
            chunk=chunk.index,
        )
    out.wall_s = time.perf_counter() - t0
    return out


def plan(
    campaign_seed: int,
    runs: int,
    chunk: int = CHUNK,
    shrink: bool = True,
    lengths: tuple[str, ...] = generate.LENGTHS,
) -> list[Chunk]:
    """The campaign's chunks: a pure function of its seed and size."""
    n = max(1, -(-runs // chunk))
    sizes = [runs // n + (1 if k < runs % n else 0) for k in range(n)]
    return [Chunk(campaign_seed, k, s, shrink, lengths) for k, s in enumerate(sizes)]


def execute(
    chunks: list[Chunk], workers: int | None = None, scheduler: str | None = None
) -> Iterator[ChunkResult]:
    """Chunk results as they finish: on local processes, or on Dask."""
    from hil.campaign import executor
    from hil.campaign.spec import CampaignError

    tree = executor.tree_id()  # compiles once, before any worker does
    stream = (
        executor.dask_map(run_chunk, chunks, scheduler, CampaignError)
        if scheduler
        else executor.pool_map(run_chunk, chunks, workers)
    )
    for r in stream:
        if r.tree != tree:
            raise CampaignError(
                f"chunk {r.index} ran firmware tree {r.tree}, this heatrig has {tree}: install "
                "the same heatrig tree on every Dask worker"
            )
        yield r


@dataclass
class Totals:
    """A campaign's counts, over every chunk."""

    scenarios: int = 0
    distinct: int = 0
    sim_s: float = 0.0
    cpu_s: float = 0.0
    exercised: Counter[str] = field(default_factory=Counter)
    violated: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)
    puffs: Counter[str] = field(default_factory=Counter)
    counterexamples: list[CounterExample] = field(default_factory=list)
    flakes: list[Flake] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def add(self, r: ChunkResult) -> None:
        for s in r.scenarios:
            self.scenarios += 1
            self._keys.add(s.key)
            self.distinct = len(self._keys)
            self.sim_s += s.sim_s
            self.cpu_s += s.wall_s
            self.exercised.update(s.exercised)
            self.violated.update(s.violated)
            self.tags.update(s.tags)
            self.puffs.update(s.puffs)
        if r.counterexample is not None:
            self.counterexamples.append(r.counterexample)
        self.flakes += r.flakes
