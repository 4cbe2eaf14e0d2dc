"""A mutation run: the mutants of each module, its baseline, the named bugs,
and the score.

    killed / (generated - invalid - equivalent)

A mutant is killed when one of its module's tests fails (or it hangs past
the timeout: counted as killed, shown apart). Invalid mutants do not
compile (CPython or mpy-cross) and count nowhere. Equivalent ones are those
reviewed in mutation/equivalent.toml; an entry that matches no mutant any
more (the code changed) is reported as stale.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hil.mutation import mutants
from hil.mutation.plan import Plan
from hil.mutation.run import Job, MutationError, Outcome, execute, local_workers, tree_id
from hil.paths import FIRMWARE_DIR

MIN_TIMEOUT_S = 60.0
TIMEOUT_FACTOR = 3.0  # x the module's baseline: a mutant that hangs


@dataclass
class ModuleScore:
    module: str
    generated: int = 0
    selected: int = 0  # run (a sample may select fewer than generated)
    invalid: int = 0
    killed: int = 0
    timeout: int = 0
    equivalent: int = 0
    survived: list[tuple[mutants.Mutant, Outcome]] = field(default_factory=list)
    errors: list[tuple[mutants.Mutant, Outcome]] = field(default_factory=list)
    baseline_s: float = 0.0

    @property
    def judged(self) -> int:
        return self.killed + self.timeout + len(self.survived)

    @property
    def score(self) -> float | None:
        return (self.killed + self.timeout) / self.judged if self.judged else None


@dataclass
class BugResult:
    module: str
    what: str
    outcome: Outcome | None  # None: the bug's text is no longer in the module


@dataclass
class Report:
    modules: dict[str, ModuleScore]
    bugs: list[BugResult]
    equivalent_used: dict[str, str]  # key -> reason, matched this run
    stale_equivalent: list[str]
    safety: tuple[str, ...]
    outcomes: list[Outcome]
    workers: str
    wall_s: float = 0.0

    def safety_score(self) -> tuple[int, int]:
        killed = sum(s.killed + s.timeout for m, s in self.modules.items() if m in self.safety)
        judged = sum(s.judged for m, s in self.modules.items() if m in self.safety)
        return killed, judged


def tests_for(
    mu: mutants.Mutant, planned: tuple[str, ...], cover: dict[str, Any] | None
) -> tuple[str, ...]:
    """The tests that can notice a mutant: those that ran its line in the
    baseline, then those whose lines are unknown (the simulator's, which run
    the firmware in MicroPython; a doc check; a test that traced on its own).
    A mutant outside a function's body (run at import) gets them all."""
    if cover is None or not mu.in_body:
        return planned
    lines: dict[str, list[int]] = cover["lines"]
    opaque = set(cover["opaque"])
    span = set(range(mu.needs[0], mu.needs[1] + 1))
    ran = [t for t in cover["order"] if t not in opaque and span & set(lines[t])]
    unknown = [t for t in cover["order"] if t in opaque or not lines[t]]
    return tuple(ran + unknown)


def select(
    muts: list[mutants.Mutant],
    *,
    branches: bool = False,
    sample: int | None = None,
    seed: int = 1,
) -> list[mutants.Mutant]:
    """All mutants; or the never-taken branches (`if False`) plus a fixed-seed
    sample of `sample` others."""
    if not branches and sample is None:
        return muts
    chosen = [m for m in muts if branches and m.op == "cond" and "False" in m.after]
    rest = [m for m in muts if m not in chosen]
    if sample:
        rng = random.Random(f"{seed}:{muts[0].module if muts else ''}")
        chosen += rng.sample(rest, min(sample, len(rest)))
    return sorted(chosen, key=muts.index)


def run(
    plan: Plan,
    modules: Sequence[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    branches: bool = False,
    sample: int | None = None,
    seed: int = 1,
    run_equivalent: bool = False,
    bugs: bool = True,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[Outcome], None] | None = None,
) -> Report:
    t0 = time.monotonic()
    tree = tree_id()
    unknown = [m for m in modules if m not in plan.modules]
    if unknown:
        raise MutationError(
            f"no tests planned for {', '.join(unknown)}: add [modules.NAME] to mutation/plan.toml"
        )
    scores = {m: ModuleScore(m) for m in modules}
    sources = {m: (FIRMWARE_DIR / f"{m}.py").read_text(encoding="utf-8") for m in modules}
    all_muts = {m: mutants.generate_from(sources[m], m) for m in modules}

    # baselines: every module's tests pass as the code is; their time sets the
    # timeouts, and the lines each test runs choose the tests of each mutant
    base_jobs = [
        Job(i, m, "", None, plan.modules[m], 1800.0, tree, trace=True)
        for i, m in enumerate(modules)
    ]
    cover: dict[str, dict[str, Any]] = {}
    for o in execute(base_jobs, workers=workers, scheduler=scheduler):
        if o.status != "survived":
            raise MutationError(
                f"the tests of {o.module} fail without any mutant ({o.status}: {o.test} "
                f"{o.detail}): fix them before measuring anything against them"
            )
        scores[o.module].baseline_s = o.wall_s
        if o.coverage:
            cover[o.module] = o.coverage
    timeout = {m: max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * scores[m].baseline_s) for m in modules}

    jobs: list[Job] = []
    by_index: dict[int, mutants.Mutant] = {}
    used: dict[str, str] = {}
    keys_now: set[str] = set()
    for m in modules:
        s = scores[m]
        s.generated = len(all_muts[m])
        keys_now.update(x.key for x in all_muts[m])
        for mu in select(all_muts[m], branches=branches, sample=sample, seed=seed):
            s.selected += 1
            if mu.key in plan.equivalent:
                used[mu.key] = plan.equivalent[mu.key]
                s.equivalent += 1
                if not run_equivalent:
                    continue
            idx = len(jobs)
            by_index[idx] = mu
            tests = tests_for(mu, plan.modules[m], cover.get(m))
            jobs.append(Job(idx, m, mu.key, mu.apply(sources[m]), tests, timeout[m], tree))
    bug_jobs: dict[int, BugResult] = {}
    results: list[BugResult] = []
    for bug in plan.bugs if bugs else ():
        if bug.module not in modules:
            continue
        text = bug.apply(sources[bug.module])
        r = BugResult(bug.module, bug.what, None)
        results.append(r)
        if text is not None:
            idx = len(jobs)
            bug_jobs[idx] = r
            job = Job(idx, bug.module, f"bug: {bug.what}", text, plan.modules[bug.module],
                      timeout[bug.module], tree)  # fmt: skip
            jobs.append(job)

    outcomes: list[Outcome] = []
    for n, o in enumerate(execute(jobs, workers=workers, scheduler=scheduler), 1):
        outcomes.append(o)
        if progress is not None:
            progress(n, len(jobs))
        if log is not None:
            log(o)
        if o.index in bug_jobs:
            bug_jobs[o.index].outcome = o
            continue
        mu = by_index[o.index]
        s = scores[o.module]
        if mu.key in plan.equivalent:
            if o.status in ("killed", "timeout"):  # not equivalent after all
                s.equivalent -= 1
                used.pop(mu.key, None)
                s.killed += o.status == "killed"
                s.timeout += o.status == "timeout"
            continue
        if o.status == "killed":
            s.killed += 1
        elif o.status == "timeout":
            s.timeout += 1
        elif o.status == "invalid":
            s.invalid += 1
        elif o.status == "survived":
            s.survived.append((mu, o))
        else:
            s.errors.append((mu, o))
    for s in scores.values():
        s.survived.sort(key=lambda x: x[0].line)
    stale = [k for k in plan.equivalent if k.split(":", 1)[0] in modules and k not in keys_now]
    where = scheduler or f"{min(max(len(jobs), 1), local_workers(workers))} local workers"
    return Report(scores, results, used, stale, plan.safety, outcomes, where,
                  time.monotonic() - t0)  # fmt: skip


def format_report(r: Report, target_pct: float) -> str:
    out: list[str] = []
    head = f"{'module':<15}{'generated':>10}{'run':>6}{'invalid':>8}{'killed':>8}"
    head += f"{'timeout':>8}{'equiv.':>8}{'survived':>9}{'errors':>7}{'score':>9}{'baseline':>10}"
    out.append(head)
    for s in r.modules.values():
        sc = f"{100 * s.score:.1f} %" if s.score is not None else "-"
        out.append(
            f"{s.module:<15}{s.generated:>10}{s.selected:>6}{s.invalid:>8}{s.killed:>8}"
            f"{s.timeout:>8}{s.equivalent:>8}{len(s.survived):>9}{len(s.errors):>7}{sc:>9}"
            f"{s.baseline_s:>9.1f}s"
        )
    k, j = r.safety_score()
    if j:
        out.append(
            f"safety modules ({', '.join(m for m in r.safety if m in r.modules)}): "
            f"{k} of {j} non-equivalent mutants killed, {100 * k / j:.1f} % "
            f"(target {target_pct:g} %)"
        )
    if r.bugs:
        caught = sum(1 for b in r.bugs if b.outcome is not None and b.outcome.status != "survived")
        out.append(f"\nnamed bugs (mutation/plan.toml): {caught} of {len(r.bugs)} caught")
        for b in r.bugs:
            if b.outcome is None:
                out.append(f"  STALE  {b.module}: {b.what}: its text is no longer in the module")
            elif b.outcome.status == "survived":
                out.append(f"  MISSED {b.module}: {b.what}")
            else:
                by = b.outcome.test or b.outcome.detail
                out.append(f"  caught {b.module}: {b.what} -- {b.outcome.status} by {by}")
    survivors = [x for s in r.modules.values() for x in s.survived]
    if survivors:
        out.append(f"\nsurviving mutants ({len(survivors)}):")
        for mu, _ in survivors:
            out.append(f"  {mu.module}.py:{mu.line}  {mu.key.split(':', 1)[1].strip()}")
    errors = [x for s in r.modules.values() for x in s.errors]
    if errors:
        out.append(f"\nmutants whose run failed to complete ({len(errors)}):")
        for mu, o in errors:
            out.append(f"  {mu.module}.py:{mu.line}  {mu.key}: {o.detail}")
    if r.equivalent_used:
        out.append(f"\nequivalent mutants (mutation/equivalent.toml): {len(r.equivalent_used)}")
        for key, reason in r.equivalent_used.items():
            out.append(f"  {key}\n      {reason}")
    if r.stale_equivalent:
        out.append(
            f"\nstale entries in mutation/equivalent.toml (no such mutant any more): "
            f"{len(r.stale_equivalent)}"
        )
        out.extend(f"  {k}" for k in r.stale_equivalent)
    out.append(f"\n{len(r.outcomes)} runs on {r.workers}, wall time {r.wall_s:.0f} s")
    return "\n".join(out)
