"""`heatrig campaign SPEC`: run a campaign, summarise it, write its results;
`--only SEED` repeats one of its runs alone, in full.

Results go to results/campaigns/<name>/: runs.json and runs.csv (one row per
run: seed, parameters, measurements, outcome), summary.json (distributions,
Cpk, worst cases), distributions.png and campaign.html. A run is judged on
what applies to it, as `heatrig sim` judges it: its heating KPIs, its power
measurements, or both.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import shlex
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hil.campaign import executor, statistics
from hil.campaign import spec as campaign_spec
from hil.campaign.executor import JobResult
from hil.campaign.spec import CampaignError, CampaignSpec
from hil.campaign.statistics import KpiStats
from hil.paths import RESULTS_DIR
from hil.qa import limits, measure, power, power_kpi
from hil.qa.measure import HEATING, POWER, Outcome
from hil.report import html as report
from hil.report import plot, power_plot
from hil.wire import series

MAX_KEPT_TELEMETRY = 50  # about 4.5 MB of CSV per run
STATS_HEAD = ("measurement", "units", "n", "mean", "sd", "min", "max", "limits", "Cpk", "fail",
              "marginal", "worst seed")  # fmt: skip


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "campaign",
        help="many runs of a scenario (sweeps, Monte-Carlo draws) in parallel: KPI "
        "distributions, Cpk, worst cases",
    )
    c.add_argument("spec", type=Path, help="campaign spec (TOML)")
    c.add_argument("--out", type=Path, help="output directory (default: results/campaigns/NAME)")
    c.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    c.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on this Dask distributed scheduler instead"
    )
    c.add_argument("--runs", type=int, help="override the spec's runs (a quick look)")
    c.add_argument("--only", type=int, metavar="SEED", help="repeat the run with this seed alone")
    c.add_argument(
        "--keep-telemetry",
        action="store_true",
        help=f"write every run's telemetry and record under runs/ (at most "
        f"{MAX_KEPT_TELEMETRY} runs): for `heatrig report` overlays",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(fn=cmd_campaign)


def cmd_campaign(args: argparse.Namespace) -> int:
    spec = campaign_spec.load(args.spec)
    if args.runs is not None:
        if args.runs < 1:
            raise CampaignError(f"--runs {args.runs}: needs at least 1")
        spec.runs = args.runs
    out = args.out or RESULTS_DIR / "campaigns" / spec.name
    if args.only is not None:
        return rerun(spec, args.only, out)
    if args.keep_telemetry and spec.total_runs > MAX_KEPT_TELEMETRY:
        raise CampaignError(
            f"--keep-telemetry keeps at most {MAX_KEPT_TELEMETRY} runs; this campaign has "
            f"{spec.total_runs} (lower runs, or use --only SEED for single runs)"
        )
    if args.workers is not None and args.workers < 1:
        raise CampaignError(f"--workers {args.workers}: needs at least 1")
    jobs = campaign_spec.plan(spec, keep_telemetry=args.keep_telemetry)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    heat = functools.lru_cache(maxsize=None)(lambda p, r: _limits_for(spec, p, r))
    pwr = functools.lru_cache(maxsize=None)(lambda name: _power_limits_for(spec, name))
    results = executor.execute(
        jobs,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        limits_for=lambda r: (heat(r.profile, r.regime), pwr(r.scenario)),
    )
    wall_s = time.perf_counter() - t0
    where = args.scheduler or f"{executor.local_workers(args.workers)} local workers"
    summary = summarize(spec, results, wall_s, where)
    write_outputs(spec, results, summary, out)
    if args.keep_telemetry:
        _keep_telemetry(results, out / "runs")
    print(format_summary(spec, summary))
    print(f"\n  results    {out}/  (runs.csv, summary.json, distributions.png, campaign.html)")
    return 0


# --- summary -----------------------------------------------------------------------


def summarize(
    spec: CampaignSpec, results: list[JobResult], wall_s: float, where: str
) -> dict[str, Any]:
    """Statistics per profile and regime (each has its own limits)."""
    groups: dict[tuple[str, str], list[JobResult]] = {}
    for r in results:
        groups.setdefault((r.profile, r.regime), []).append(r)
    out_groups = []
    for (profile, regime), runs in sorted(groups.items()):
        lim = _limits_for(spec, profile, regime)
        plim = _power_limits_for(spec, runs[0].scenario)
        parts = {g for r in runs for g in r.groups}
        by_name = {**(lim.by_name if lim else {}), **(plim.by_name if plim else {})}
        labels = [x.label for x, g in ((lim, HEATING), (plim, POWER)) if x and g in parts]
        stats = statistics.summarize(runs, by_name or None)
        out_groups.append(
            {
                "profile": profile,
                "regime": regime,
                "judged": sorted(parts),
                "limits": ", ".join(labels) or "none",
                "runs": len(runs),
                "outcomes": _count(r.outcome for r in runs),
                "kpis": stats,
                "worst_runs": statistics.worst_runs(runs),
            }
        )
    return {
        "campaign": spec.name,
        "spec": str(spec.path),
        "scenario": str(spec.scenario_path),
        "runs": len(results),
        "seed": spec.seed,
        "wall_s": round(wall_s, 1),
        "where": where,
        "firmware_version": next((r.firmware_version for r in results if r.firmware_version), ""),
        "errors": sum(bool(r.error) for r in results),
        "groups": out_groups,
    }


def _limits_for(spec: CampaignSpec, profile: str, regime: str) -> limits.LimitSet | None:
    if spec.limits_path:
        return limits.load(spec.limits_path)
    return limits.for_run(profile, regime) if profile else None


def _power_limits_for(spec: CampaignSpec, scenario_name: str) -> limits.LimitSet | None:
    if spec.power_limits_path:
        return limits.load(spec.power_limits_path)
    return limits.power_for_run(scenario_name)


def _count(outcomes: Any) -> dict[str, int]:
    counts = dict.fromkeys((o.value for o in Outcome), 0)
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return counts


def rerun_command(spec: CampaignSpec, seed: int) -> str:
    return f"heatrig campaign {shlex.quote(str(spec.path))} --only {seed}"


def format_summary(spec: CampaignSpec, s: dict[str, Any]) -> str:
    lines = [
        f"{spec.name}: {s['runs']} runs of {spec.scenario_path.stem} on {s['where']} "
        f"in {s['wall_s']:.1f} s, firmware {s['firmware_version']}",
    ]
    if spec.description:
        lines.append(f"  {spec.description}")
    for d in spec.draws:
        lines.append(f"  draw  {d.key} ~ {d.describe()}")
    for key, values in spec.sweep.items():
        lines.append(f"  sweep {key} in {values}")
    if s["errors"]:
        lines.append(f"  {s['errors']} runs did not complete (counted as failed)")
    for g in s["groups"]:
        oc = g["outcomes"]
        lines.append(
            f"\n  profile {g['profile']}, regime {g['regime']}: {g['runs']} runs -- "
            f"{oc['pass']} pass, {oc['marginal']} marginal, {oc['fail']} fail "
            f"(limits: {g['limits']})"
        )
        lines.append(_stats_table(g["kpis"]))
        worst = g["worst_runs"]
        if worst:
            lines.append("\n  worst runs (re-run one alone with --only SEED):")
            for r in worst:
                lines.append(f"    seed {r.seed:<10} {r.outcome.upper():<8} {_why_bad(r)}")
                lines.append(f"    {'':<15}{'':<9} {_params(r.params)}")
        lines.append(
            f"\n  e.g. {rerun_command(spec, worst[0].seed if worst else _worst_seed(g['kpis']))}"
        )
    return "\n".join(lines)


def _stats_table(stats: list[KpiStats]) -> str:
    head = STATS_HEAD
    rows = [head]
    for st in stats:
        if st.categories:
            cats = ", ".join(f"{k} x{v}" for k, v in sorted(st.categories.items()))
            mean = sd = lo = hi = ""
            lo = cats
        else:
            mean, sd, lo, hi = (_g(st.mean), _g(st.sd), _g(st.min), _g(st.max))
        rows.append(
            (
                st.label,
                st.units,
                str(st.n or sum(st.categories.values())),
                mean,
                sd,
                lo,
                hi,
                st.limits.describe() if st.limits else "-",
                statistics.format_cpk(st),
                str(st.outcomes.get("fail", 0)),
                str(st.outcomes.get("marginal", 0)),
                str(st.worst_seed) if st.worst_seed is not None else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  "
        + "  ".join(
            c.ljust(w) if i in (0, 1, 7) else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def _why_bad(r: JobResult) -> str:
    if r.error:
        return f"did not complete: {r.error}"
    bad = []
    for spec in measure.specs_of(r.outcomes):
        o = r.outcomes.get(spec.name)
        if o in (Outcome.FAIL.value, Outcome.MARGINAL.value):
            v = f"{measure.format_value(r.values.get(spec.name))} {spec.units}".rstrip()
            bad.append(f"{spec.label} {v} ({o})")
    return "; ".join(bad)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_g(v) if isinstance(v, float) else v}" for k, v in params.items())


def _worst_seed(stats: list[KpiStats]) -> int:
    seeds = [st.worst_seed for st in stats if st.worst_seed is not None]
    return seeds[0] if seeds else 0


def _g(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.4g}"
    return str(x)


# --- files -------------------------------------------------------------------------


def write_outputs(
    spec: CampaignSpec, results: list[JobResult], s: dict[str, Any], out: Path
) -> None:
    rows = [_result_json(r) for r in results]
    (out / "runs.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    (out / "runs.csv").write_text(_runs_csv(results), encoding="utf-8")
    js = dict(s)
    js["groups"] = [
        {
            **g,
            "kpis": [st.to_json() for st in g["kpis"]],
            "worst_runs": [
                {
                    "seed": r.seed,
                    "index": r.index,
                    "outcome": r.outcome,
                    "why": _why_bad(r),
                    "params": r.params,
                    "rerun": rerun_command(spec, r.seed),
                }
                for r in g["worst_runs"]
            ],
        }
        for g in s["groups"]
    ]
    (out / "summary.json").write_text(json.dumps(js, indent=2) + "\n", encoding="utf-8")
    pngs = []
    for k, g in enumerate(s["groups"]):
        values = {
            st.name: _numeric(
                [
                    r.values.get(st.name)
                    for r in results
                    if r.profile == g["profile"] and r.regime == g["regime"]
                ]
            )
            for st in g["kpis"]
            if not st.categories
        }
        lim = {st.name: st.limits for st in g["kpis"] if st.limits}
        labels = {st.name: f"{st.label} ({st.units})" if st.units else st.label for st in g["kpis"]}
        notes = {
            st.name: f"Cpk {statistics.format_cpk(st)}" for st in g["kpis"] if st.cpk is not None
        }
        name = "distributions.png" if k == 0 else f"distributions-{g['profile']}-{g['regime']}.png"
        title = (
            f"{spec.name}: {g['runs']} runs of {spec.scenario_path.stem}, firmware "
            f"{s['firmware_version']} (profile {g['profile']}, regime {g['regime']})"
        )
        pngs.append(plot.distributions(values, lim, labels, out / name, title=title, notes=notes))
    report.write_page(out / "campaign.html", f"heatrig campaign {spec.name}", _html(spec, s, pngs))


def _numeric(vals: list[measure.Value]) -> np.ndarray:
    return np.array([float(v) for v in vals if isinstance(v, (int, float))], dtype=float)


def _result_json(r: JobResult) -> dict[str, Any]:
    d = asdict(r)
    d.pop("telemetry_csv")
    d.pop("record_json")
    return d


def _runs_csv(results: list[JobResult]) -> str:
    params = list(dict.fromkeys(k for r in results for k in r.params))
    names = [s.name for s in statistics.measured_specs(results)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "seed", *params, *names, "outcome", "error"])
    for r in results:
        w.writerow(
            [r.index, r.seed, *(r.params.get(p, "") for p in params)]
            + ["" if r.values.get(n) is None else r.values.get(n) for n in names]
            + [r.outcome, r.error]
        )
    return buf.getvalue()


def _keep_telemetry(results: list[JobResult], root: Path) -> None:
    for r in results:
        if not r.telemetry_csv:
            continue
        d = root / f"seed-{r.seed}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "telemetry.csv").write_text(r.telemetry_csv, encoding="utf-8")
        (d / "record.json").write_text(json.dumps(r.record_json, indent=2) + "\n")
        if r.power_csv:
            (d / "power.csv").write_text(r.power_csv, encoding="utf-8")


def _html(spec: CampaignSpec, s: dict[str, Any], pngs: list[Path]) -> list[str]:
    e = report.esc
    parts = [
        f"<p>{s['runs']} runs of {e(str(spec.scenario_path.name))} on {e(s['where'])} in "
        f"{s['wall_s']:.1f} s, firmware {e(s['firmware_version'])}, campaign seed {s['seed']}."
        f"</p><p>{e(spec.description)}</p>",
        report.table(
            ["parameter", "varied as"],
            [[e(d.key), e(d.describe())] for d in spec.draws]
            + [[e(k), e(f"sweep over {v}")] for k, v in spec.sweep.items()],
        ),
    ]
    for g, png in zip(s["groups"], pngs, strict=True):
        oc = g["outcomes"]
        parts.append(
            f"<h2>profile {e(g['profile'])}, regime {e(g['regime'])}: {g['runs']} runs</h2>"
            f"<p>{oc['pass']} pass, {oc['marginal']} marginal, {oc['fail']} fail &mdash; "
            f"limits {e(g['limits'])}. Cpk: green &ge; {statistics.CAPABLE_CPK}, amber &ge; 1, "
            "red below.</p>"
        )
        rows = []
        for st in g["kpis"]:
            if st.categories:
                spread = ", ".join(f"{e(k)} &times;{v}" for k, v in sorted(st.categories.items()))
                nums = ["", "", spread, ""]
            else:
                nums = [e(_g(x)) for x in (st.mean, st.sd, st.min, st.max)]
            rows.append(
                [
                    e(st.label),
                    e(st.units),
                    str(st.n or sum(st.categories.values())),
                    *nums,
                    e(st.limits.describe() if st.limits else "-"),
                    _cpk_cell(st),
                    str(st.outcomes.get("fail", 0)),
                    str(st.outcomes.get("marginal", 0)),
                    e(str(st.worst_seed) if st.worst_seed is not None else ""),
                ]
            )
        head = list(STATS_HEAD)
        parts.append(report.table(head, rows))
        parts.append(report.img(png))
        worst = [
            [
                e(str(r.seed)),
                report.badge(Outcome(r.outcome)),
                e(_why_bad(r)),
                e(_params(r.params)),
                f"<code>{e(rerun_command(spec, r.seed))}</code>",
            ]
            for r in g["worst_runs"]
        ]
        if worst:
            parts.append("<h3>Worst runs</h3>")
            parts.append(report.table(["seed", "outcome", "why", "parameters", "re-run"], worst))
    parts.append(report.legend())
    return parts


def _cpk_cell(st: KpiStats) -> str:
    text = statistics.format_cpk(st)
    if st.cpk is None:
        return report.esc(st.cpk_note or "-")
    color = (
        "#1e7b34" if st.cpk >= statistics.CAPABLE_CPK else "#b36b00" if st.cpk >= 1 else "#b3261e"
    )
    note = f" ({report.esc(st.cpk_note)})" if st.cpk_note else ""
    return f'<span style="color:{color};font-weight:600">{text}</span>{note}'


# --- one run alone ----------------------------------------------------------------


def rerun(spec: CampaignSpec, seed: int, out: Path) -> int:
    """Repeat the campaign's run with this seed, alone, with its telemetry,
    record and heating curve; compare its numbers with the campaign's."""
    job = next((j for j in campaign_spec.plan(spec, keep_telemetry=True) if j.seed == seed), None)
    if job is None:
        raise CampaignError(
            f"no run of {spec.path} has seed {seed} (its seeds are in runs.csv of its results)"
        )
    r = executor.run_job(job)
    d = out / f"seed-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    print(f"{spec.name}: run {job.index}, seed {seed}: {_params(job.params)}")
    if r.error:
        print(f"  did not complete: {r.error}")
        return 1
    (d / "telemetry.csv").write_text(r.telemetry_csv, encoding="utf-8")
    (d / "record.json").write_text(json.dumps(r.record_json, indent=2) + "\n", encoding="utf-8")
    files = [f"  telemetry  {d / 'telemetry.csv'}"]
    pngs = []
    rec = series.read_csv(d / "telemetry.csv")
    if len(rec):
        pngs.append(plot.heating_curve(rec, d / "heating_curve.png", None))
    if r.power_csv:
        (d / "power.csv").write_text(r.power_csv, encoding="utf-8")
        files.append(f"  power      {d / 'power.csv'}")
        pw = power.read_csv(d / "power.csv")
        print("\n".join(f"  {line}" for line in power_kpi.summary_lines(pw)) + "\n")
        pngs += power_plot.write_all(pw, d)
    print(measure.table([measure.Measurement.from_json(m) for m in r.record_json["measurements"]]))
    print(f"\n  outcome    {r.outcome.upper()}")
    print(_compare_with_campaign(out / "runs.json", r))
    files.append(f"  record     {d / 'record.json'}")
    files += [f"  {'plot' if i == 0 else '':<9}  {png}" for i, png in enumerate(pngs)]
    print("\n".join(files))
    return 0


def _compare_with_campaign(runs_json: Path, r: JobResult) -> str:
    if not runs_json.is_file():
        return "  (no campaign results to compare with)"
    rows = json.loads(runs_json.read_text(encoding="utf-8"))
    old = next((x for x in rows if x["seed"] == r.seed), None)
    if old is None:
        return f"  (seed {r.seed} is not in {runs_json})"
    diffs = [
        f"{k}: campaign {old['values'].get(k)!r}, now {v!r}"
        for k, v in r.values.items()
        if old["values"].get(k) != v
    ]
    if not diffs:
        return f"  every measurement is identical to the campaign's run ({runs_json})"
    return "  DIFFERS from the campaign's run:\n    " + "\n    ".join(diffs)
