"""The `heatrig` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil import kpi, plot, power, scenario, simrun, toolchain
from hil.paths import RESULTS_DIR, SCENARIOS_DIR


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="heatrig", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("sim", help="simulate a scenario: telemetry CSV, heating-curve PNG, KPIs")
    s.add_argument("scenario", help="scenario file (TOML), or the name of a built-in one")
    s.add_argument("--out", type=Path, help="output directory (default: results/<scenario name>)")
    s.add_argument("--seed", type=int, help="override the scenario's seed")
    s.add_argument(
        "--json", action="store_true", help="print the KPIs as one JSON object, nothing else"
    )
    s.add_argument("--no-plot", action="store_true", help="skip the PNG")
    s.add_argument(
        "--pace",
        type=float,
        metavar="X",
        help="keep virtual time at X times the wall clock (1 = real time); default: flat out",
    )
    s.set_defaults(fn=cmd_sim)

    ls = sub.add_parser("scenarios", help="list the built-in scenarios")
    ls.set_defaults(fn=cmd_scenarios)

    args = p.parse_args(argv)
    try:
        return int(args.fn(args))
    except (scenario.ScenarioError, simrun.SimError, toolchain.ToolError) as e:
        print(f"heatrig: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0


def resolve_scenario(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    builtin = SCENARIOS_DIR / (name if name.endswith(".toml") else name + ".toml")
    if builtin.exists():
        return builtin
    known = ", ".join(sorted(q.stem for q in SCENARIOS_DIR.glob("*.toml")))
    raise scenario.ScenarioError([f"{name}: no such file, nor a built-in scenario ({known})"])


def cmd_sim(args: argparse.Namespace) -> int:
    overrides = {"scenario.seed": args.seed} if args.seed is not None else None
    sc = scenario.load(resolve_scenario(args.scenario), overrides)
    res = simrun.run(sc, extra_config={"pace": args.pace} if args.pace else None)
    puffs = kpi.true_puffs(res.truth)
    k = kpi.compute(res.record, puffs, res.realtime_factor)
    pw = power.summary(res.power) if res.power is not None and len(res.power) else None
    if args.json:
        print(json.dumps(k if pw is None else {**k, "power": pw}))
        return 0
    out = args.out or RESULTS_DIR / sc.name
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "telemetry.csv"
    res.record.write_csv(csv_path)
    (out / "kpi.json").write_text(json.dumps(k, indent=2) + "\n")
    (out / "console.log").write_text("\n".join(res.console) + "\n")
    print(f"{sc.name}: {sc.description}" if sc.description else sc.name)
    print(kpi.table(k))
    if pw is not None and res.power is not None:
        print("\npower\n" + power.table(pw))
    print(f"\n  telemetry  {csv_path}")
    if pw is not None and res.power is not None:
        res.power.write_csv(out / "power.csv", res.record.meta)
        print(f"  power      {out / 'power.csv'}")
    if not args.no_plot and len(res.record):
        png = plot.heating_curve(res.record, out / "heating_curve.png", puffs)
        print(f"  plot       {png}")
    print(f"  KPIs       {out / 'kpi.json'}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    for path in sorted(SCENARIOS_DIR.glob("*.toml")):
        try:
            sc = scenario.load(path)
            print(f"  {path.stem:<16} {sc.description}")
        except scenario.ScenarioError as e:
            print(f"  {path.stem:<16} INVALID: {e.problems[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
