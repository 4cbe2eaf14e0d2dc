"""The safety campaign's outputs: summary.json, a scenario file and its curve
for each counter-example, and campaign.html for QA -- the invariants, how
many scenarios exercised each, what the scenarios exercised (faults,
calibration records, puff patterns...), and any counter-example with its
plot."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hil.report import html as report
from hil.report import plot
from hil.safety import generate, invariants
from hil.safety.search import CounterExample, Totals
from hil.scenarios import scenario
from hil.simulator import runner

# the exercise tables of the report: a tag prefix, its title and its values
GROUPS = (
    ("fault", "Faults injected (drawn)", generate.FAULTS),
    (
        "onset_while_heating",
        "Fault conditions met while the heater was on",
        (
            *generate.PLANT_FAULTS[:2],
            "adc_stuck",
            "timer_stop",
            *generate.ENV_FAULTS,
            "stick_out",
            "no_stick",
        ),
    ),
    ("record", "Calibration records", generate.RECORDS),
    ("puffs", "Puff patterns", (*generate.PUFF_PATTERNS, "in_preheat", "70ml_and_up")),
    ("profile", "Heating profiles", generate.PROFILES),
    ("length", "Scenario lengths", generate.LENGTHS),
)
OTHER_TAGS = ("stick_out", "ambient_step", "power_cut", "power_cut_mid_write", "timer_latency")


def summary(name: str, seed: int, t: Totals, wall_s: float, where: str) -> dict[str, Any]:
    return {
        "campaign": name,
        "seed": seed,
        "scenarios": t.scenarios,
        "distinct_scenarios": t.distinct,
        "wall_s": round(wall_s, 1),
        "where": where,
        "simulated_s": round(t.sim_s, 1),
        "scenarios_per_s": round(t.scenarios / wall_s, 2) if wall_s else None,
        "invariants": [
            {
                "name": i.name,
                "statement": i.statement,
                "exercised": t.exercised[i.name],
                "violated": t.violated[i.name],
            }
            for i in invariants.INVARIANTS
        ],
        "violations": sum(t.violated.values()),
        "tags": dict(sorted(t.tags.items())),
        "puffs": dict(t.puffs),
        "counterexamples": [
            {k: v for k, v in asdict(c).items() if k not in ("toml", "first_toml")}
            for c in t.counterexamples
        ],
        "flakes": [asdict(f) for f in t.flakes],
    }


def write_counterexample(c: CounterExample, out: Path, k: int) -> Path:
    """The shrunk scenario as a file (runnable with `heatrig sim FILE`), the
    scenario it was shrunk from, and its heating curve."""
    d = out / f"counterexample-{k}"
    d.mkdir(parents=True, exist_ok=True)
    why = "\n".join(f"{name}: {w}" for name, ws in c.violations.items() for w in ws)
    head = (
        f"A counter-example of the safety campaign, shrunk from a drawn scenario\n"
        f"(chunk {c.chunk}, after {c.found_after} scenarios, {c.shrink_runs} shrink runs):\n{why}\n"
        "Run it: heatrig sim THIS_FILE"
    )
    body = c.toml
    (d / "scenario.toml").write_text("\n".join("# " + h for h in head.splitlines()) + "\n\n" + body)
    (d / "drawn.toml").write_text(c.first_toml)
    (d / "violations.txt").write_text(why + "\n")
    # the curve: the same scenario with the firmware's telemetry on
    sc = scenario.parse(body.replace("telemetry = false", "telemetry = true"), d / "scenario.toml")
    try:
        res = runner.run(sc)
        plot.heating_curve(res.series, d / "heating_curve.png", None)
        (d / "telemetry.csv").write_text(res.series.to_csv())
    except runner.SimError as e:
        (d / "run_error.txt").write_text(str(e))
    return d


def write(out: Path, s: dict[str, Any], t: Totals, dirs: list[Path]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    return report.write_page(
        out / "campaign.html", f"heatrig safety campaign {s['campaign']}", _html(s, t, dirs)
    )


def _html(s: dict[str, Any], t: Totals, dirs: list[Path]) -> list[str]:
    e = report.esc
    bad = s["violations"]
    verdict = (
        '<span style="color:#1e7b34;font-weight:600">0 invariant violations</span>'
        if not bad
        else f'<span style="color:#b3261e;font-weight:600">{bad} violated an invariant</span>'
    )
    parts = [
        f"<p>{s['scenarios']} generated scenarios ({s['distinct_scenarios']} distinct), "
        f"campaign seed {s['seed']}, on {e(s['where'])} in {s['wall_s']:.0f} s "
        f"({s['scenarios_per_s']} scenarios/s, {s['simulated_s'] / 3600:.1f} h of device "
        f"time): {verdict}. Written {time.strftime('%Y-%m-%d %H:%M')}. Invariants are checked "
        "on the simulator's truth at every 10 ms sample (docs/safety.md).</p>",
        "<h2>Invariants</h2>",
        report.table(
            ["invariant", "statement", "scenarios that exercised it", "violated in"],
            [
                [e(i["name"]), e(i["statement"]), str(i["exercised"]), _count(i["violated"])]
                for i in s["invariants"]
            ],
        ),
    ]
    p = s["puffs"]
    parts.append(
        f"<p>Puffs in sessions that ended and reported their count: {p.get('taken', 0)} taken, "
        f"{p.get('missed', 0)} missed, {p.get('phantom', 0)} phantom.</p>"
    )
    parts.append("<h2>What the scenarios exercised</h2>")
    for prefix, title, values in GROUPS:
        rows = [[e(v), str(t.tags.get(f"{prefix}:{v}", 0))] for v in values]
        parts.append(f"<h3>{e(title)}</h3>" + report.table(["", "scenarios"], rows))
    parts.append(
        "<h3>Other conditions</h3>"
        + report.table(["", "scenarios"], [[e(k), str(t.tags.get(k, 0))] for k in OTHER_TAGS])
    )
    if t.flakes:
        parts.append(
            "<h2>Runs that failed once and passed again</h2><p>The simulation is deterministic: "
            "these point at the rig (a host under load, a process killed), not the device.</p>"
        )
        for f in t.flakes:
            parts.append(f"<p>{e(str(f.violations))}</p><pre>{e(f.toml)}</pre>")
    parts.append("<h2>Counter-examples</h2>")
    if not dirs:
        parts.append("<p>None: no scenario violated an invariant.</p>")
    for c, d in zip(t.counterexamples, dirs, strict=True):
        why = "".join(
            f"<li><b>{e(k)}</b>: {e(w)}</li>" for k, ws in c.violations.items() for w in ws
        )
        parts.append(
            f"<h3>{e(d.name)}</h3><p>Found after {c.found_after} scenarios of chunk "
            f"{c.chunk}, shrunk in {c.shrink_runs} runs ({c.search_s:.0f} s in all). Scenario "
            f"file: <code>{e(str(d / 'scenario.toml'))}</code> (<code>heatrig sim</code> runs "
            f"it).</p><ul>{why}</ul>"
        )
        png = d / "heating_curve.png"
        if png.is_file():
            parts.append(report.img(png))
        parts.append(f"<pre>{e(c.toml)}</pre>")
    return parts


def _count(n: int) -> str:
    color = "#1e7b34" if not n else "#b3261e"
    return f'<span style="color:{color};font-weight:600">{n}</span>'
