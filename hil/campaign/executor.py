"""Running a campaign's jobs: in parallel on this machine's cores, or on a
Dask distributed cluster given its scheduler's address, with a progress bar.

A job is plain data (campaign_spec.Job) and `run_job` a plain function, so
both executors run the same thing. A Dask worker runs the firmware of its
own heatrig tree: every result carries that tree's identity (the hash of the
firmware and simulator sources) and a campaign refuses results from a tree
other than its own.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from hil.campaign.spec import CampaignError, Job
from hil.qa import kpi, limits, measure, testrecord
from hil.qa.measure import HEATING, POWER, Outcome
from hil.scenarios import scenario
from hil.simulator import runner, toolchain

CONNECT_TIMEOUT_S = 10  # to reach a Dask scheduler
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class JobResult:
    index: int
    seed: int
    params: dict[str, Any]
    profile: str = ""
    regime: str = ""
    ambient_c: float | None = None  # limits bands are by ambient
    refused: str = ""  # why a start was refused up front, if one was
    values: dict[str, measure.Value] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    outcome: str = Outcome.UNSET.value
    error: str = ""  # the simulation failed: the run counts as failed
    has_truth: bool = True
    firmware_version: str = ""
    tree: str = ""  # identity of the firmware and simulator sources that ran
    wall_s: float = 0.0
    telemetry_csv: str = ""  # only when the job asked to keep it
    record_json: dict[str, Any] = field(default_factory=dict)
    scenario: str = ""  # its name: the committed power limits are the scenario's
    groups: list[str] = field(default_factory=lambda: [HEATING])  # the parts judged
    power_has_truth: bool = True
    power_csv: str = ""  # only when the job asked to keep it


def tree_id() -> str:
    """The compiled firmware and simulator tree this process runs."""
    return toolchain.sim_modules().name


def run_job(job: Job) -> JobResult:
    """One run: simulate, measure, judge (the campaign judges again with its
    own limits: see judge()). Never raises for a failed simulation: that is
    a result too."""
    t0 = time.perf_counter()
    out = JobResult(index=job.index, seed=job.seed, params=dict(job.params), tree=tree_id())
    try:
        sc = scenario.parse(job.scenario_text, Path(job.scenario_name), job.overrides)
        out.profile, out.regime, out.ambient_c = sc.profile, sc.regime, sc.ambient_c
        res = runner.run(sc)
        out.refused = res.series.meta.get("refused", "")
    except (scenario.ScenarioError, runner.SimError) as e:
        out.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        out.outcome = Outcome.FAIL.value
        out.wall_s = time.perf_counter() - t0
        return out
    k = kpi.compute(res.series, kpi.true_puffs(res.truth), res.realtime_factor)
    lim = plim = None
    if job.limits_text:
        lim = limits.parse(job.limits_text, Path(job.limits_label or "campaign limits"))
    if job.power_limits_text:
        label = Path(job.power_limits_label or "campaign power limits")
        plim = limits.parse(job.power_limits_text, label)
    test = testrecord.build(res.series, k, lim, power=res.power, power_limits=plim)
    out.scenario = sc.name
    out.groups = test.parts
    out.values = {m.name: m.value for m in test.measurements}
    out.outcomes = {m.name: m.outcome.value for m in test.measurements}
    out.outcome = test.outcome.value
    out.has_truth = res.series.has_truth
    out.power_has_truth = res.power.has_truth if res.power is not None else False
    out.firmware_version = res.series.meta.get("firmware_version", "")
    if job.keep_telemetry:
        out.telemetry_csv = res.series.to_csv()
        out.record_json = test.to_json()
        if res.power is not None and len(res.power):
            out.power_csv = res.power.to_csv()
    out.wall_s = time.perf_counter() - t0
    return out


def judge(
    r: JobResult, lim: limits.LimitSet | None, power_lim: limits.LimitSet | None = None
) -> None:
    """Outcomes against the campaign's limits (heating, power), whatever
    files a worker has."""
    if r.error:
        r.outcome = Outcome.FAIL.value
        return
    ms = []
    if HEATING in r.groups:
        ms += measure.evaluate(
            r.values,
            lim.at(r.ambient_c) if lim else None,
            has_truth=r.has_truth,
            refusal_allowed=bool(lim and lim.refusal_allowed(r.ambient_c, r.refused)),
        )
    if POWER in r.groups:
        ms += measure.evaluate(
            r.values,
            power_lim.by_name if power_lim else None,
            has_truth=r.power_has_truth,
            group=POWER,
        )
    r.outcomes = {m.name: m.outcome.value for m in ms}
    r.outcome = measure.overall(ms).value


LimitPair = tuple[limits.LimitSet | None, limits.LimitSet | None]  # heating, power


def execute(
    jobs: list[Job],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    limits_for: Callable[[JobResult], LimitPair] | None = None,
) -> list[JobResult]:
    """Run every job; results in job order, judged by the heating and power
    limits `limits_for(result)` gives, when given. `scheduler`: a Dask
    distributed scheduler address (tcp://host:8786); otherwise a process per
    core here."""
    tree = tree_id()  # compiles once, before any worker does
    stream = (
        dask_map(run_job, jobs, scheduler, CampaignError)
        if scheduler
        else pool_map(run_job, jobs, workers)
    )
    results: dict[int, JobResult] = {}
    where = scheduler or f"{local_workers(workers)} local workers"
    bar = tqdm(
        total=len(jobs),
        desc=f"runs on {where}",
        unit="run",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    failed = 0
    with bar:
        for r in stream:
            check_tree(r, tree)
            if limits_for is not None:
                judge(r, *limits_for(r))
            results[r.index] = r
            failed += r.outcome == Outcome.FAIL.value
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)
    return [results[j.index] for j in jobs]


def check_tree(r: JobResult, tree: str) -> None:
    """A result from another firmware tree would mix two firmwares' numbers."""
    if r.tree != tree:
        raise CampaignError(
            f"run {r.index} (seed {r.seed}) ran firmware tree {r.tree}, this heatrig has "
            f"{tree}: install the same heatrig tree on every Dask worker"
        )


def local_workers(workers: int | None) -> int:
    """One worker per core unless told otherwise."""
    return max(1, workers or os.cpu_count() or 1)


def pool_map(fn: Callable[[T], R], items: list[T], workers: int | None) -> Iterator[R]:
    """fn over items on local worker processes, each result as it comes."""
    # spawn: workers start clean, whatever threads this process has (the progress bar's)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=local_workers(workers), mp_context=ctx) as pool:
        futures = [pool.submit(fn, i) for i in items]
        try:
            for f in cf.as_completed(futures):
                yield f.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def dask_map(
    fn: Callable[[T], R], items: list[T], address: str, error: type[Exception]
) -> Iterator[R]:
    """fn over items on a Dask cluster, each result as it comes; the caller's
    `error` when its scheduler cannot be reached."""
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")  # type: ignore[no-untyped-call]
    except OSError as e:
        raise error(
            f"cannot reach the Dask scheduler at {address}: {e}; start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS` where heatrig is installed"
        ) from None
    with client:
        futures = client.map(fn, items, pure=False)
        try:
            for f in as_completed(futures):  # type: ignore[no-untyped-call]
                yield f.result()
        except BaseException:
            client.cancel(futures)  # type: ignore[no-untyped-call]
            raise
