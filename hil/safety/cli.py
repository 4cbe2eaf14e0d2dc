"""A safety campaign from its spec (`heatrig campaign campaigns/safety.toml`,
`make safety`): generated scenarios on all cores or a Dask cluster, the
invariants, counter-examples shrunk and written, the report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from hil.campaign import executor
from hil.campaign.spec import CampaignSpec
from hil.safety import report, search


def run_campaign(spec: CampaignSpec, args: argparse.Namespace, out: Path) -> int:
    """Run the spec's generated scenarios; 0 if no invariant was violated, 1 if one was."""
    chunks = search.plan(spec.seed, spec.runs)
    where = args.scheduler or f"{executor.local_workers(args.workers)} local workers"
    totals = search.Totals()
    t0 = time.perf_counter()
    bar = tqdm(
        total=spec.runs,
        desc=f"{spec.name} on {where}",
        unit="scenario",
        disable=args.no_progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    dirs: list[Path] = []
    with bar:
        for r in search.execute(chunks, args.workers, args.scheduler):
            totals.add(r)
            if r.counterexample is not None:  # written at once: a long campaign shows it early
                d = report.write_counterexample(r.counterexample, out, len(dirs) + 1)
                dirs.append(d)
                bar.write(f"counter-example: {d / 'scenario.toml'}")
            bar.set_postfix(violations=sum(totals.violated.values()), refresh=False)
            bar.update(len(r.scenarios))
    wall_s = time.perf_counter() - t0
    s = report.summary(spec.name, spec.seed, totals, wall_s, where)
    page = report.write(out, s, totals, dirs)
    print(format_summary(s, dirs))
    print(f"\n  report     {page}")
    return 1 if s["violations"] else 0


def format_summary(s: dict[str, object], dirs: list[Path]) -> str:
    lines = [
        f"{s['campaign']}: {s['scenarios']} generated scenarios "
        f"({s['distinct_scenarios']} distinct) on {s['where']} in {s['wall_s']} s "
        f"({s['scenarios_per_s']} scenarios/s), {s['violations']} invariant violations"
    ]
    for i in s["invariants"]:  # type: ignore[attr-defined]
        lines.append(
            f"  {i['name']:<22} exercised by {i['exercised']:>6}   violated in {i['violated']}"
        )
    lines.append(f"  puffs                  {s['puffs']}")
    for d in dirs:
        lines.append(f"  counter-example        {d / 'scenario.toml'}")
    return "\n".join(lines)
