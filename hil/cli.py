"""The `heatrig` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.ble import cli as ble_cli
from hil.ble.client import BleError
from hil.campaign import cli as campaign_cli
from hil.campaign import spec as campaign_spec
from hil.farm import cli as farm_cli
from hil.paths import RESULTS_DIR, SCENARIOS_DIR
from hil.qa import kpi, limits, measure, power_kpi, testrecord
from hil.qa.measure import HEATING, POWER
from hil.report import html as report
from hil.report import plot, power_plot
from hil.rig import trace
from hil.rig.board import Board, BoardError
from hil.scenarios import scenario
from hil.simulator import runner, toolchain
from hil.update import cli as update_cli
from hil.update import image
from hil.update.image import ImageError
from hil.update.transfer import UpdateError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="heatrig", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser(
        "sim", help="simulate a scenario: telemetry and power CSV, plots, KPIs, the test record"
    )
    s.add_argument("scenario", help="scenario file (TOML), or the name of a built-in one")
    s.add_argument("--out", type=Path, help="output directory (default: results/<scenario name>)")
    s.add_argument("--seed", type=int, help="override the scenario's seed")
    s.add_argument(
        "--json", action="store_true", help="print the KPIs as one JSON object, nothing else"
    )
    s.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    s.add_argument(
        "--limits",
        type=Path,
        action="append",
        metavar="FILE",
        help="limits file, heating or power; once for each (default: "
        "limits/<profile>-<regime>.toml and limits/power-<scenario>.toml)",
    )
    s.add_argument(
        "--pace",
        type=float,
        metavar="X",
        help="keep virtual time at X times the wall clock (1 = real time); default: flat out",
    )
    s.add_argument("--trace", type=Path, metavar="FILE", help="keep a trace of the run's link")
    s.set_defaults(fn=cmd_sim)

    rp = sub.add_parser(
        "replay",
        help="decode a link trace (a board's or the simulator's) again: telemetry CSV, "
        "heating-curve PNG, KPIs, test record",
    )
    rp.add_argument("trace", type=Path, help="a .trace file (pytest --keep-traces, sim --trace)")
    rp.add_argument("--out", type=Path, help="output directory (default: results/replay/<name>)")
    rp.add_argument("--json", action="store_true", help="print the KPIs as JSON, nothing else")
    rp.add_argument("--no-plot", action="store_true", help="skip the PNG")
    rp.add_argument(
        "--limits",
        type=Path,
        action="append",
        metavar="FILE",
        help="limits file, heating or power; once for each (default: as heatrig sim)",
    )
    rp.set_defaults(fn=cmd_replay)

    ls = sub.add_parser("scenarios", help="list the built-in scenarios")
    ls.set_defaults(fn=cmd_scenarios)

    d = sub.add_parser("deploy", help="deploy the firmware to a board over its serial port")
    d.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    d.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    d.add_argument(
        "--hardware",
        action="store_true",
        help="the board has the real heater stage: deploy the firmware alone, no plant models",
    )
    d.add_argument("--no-start", action="store_true", help="leave the board in the REPL")
    d.add_argument(
        "--update-key",
        type=Path,
        action="append",
        default=[],
        help="a public key (PEM) whose signed images the kit takes (docs/update.md); repeatable",
    )
    d.set_defaults(fn=cmd_deploy)

    v = sub.add_parser("vboard", help="run a virtual board (the unix port behind a pty)")
    v.add_argument("--flash", type=Path, help="its flash directory (default: a temporary one)")
    v.set_defaults(fn=cmd_vboard)

    r = sub.add_parser("report", help="one self-contained HTML report of one or more runs")
    r.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directory or CSV")
    r.add_argument("-o", "--out", type=Path, help="HTML file (default: results/report.html)")
    r.add_argument(
        "--limits",
        type=Path,
        action="append",
        metavar="FILE",
        help="judge every run against this limits file (heating or power; once for each)",
    )
    r.add_argument("--title", default="", help="the report's title")
    r.set_defaults(fn=cmd_report)

    campaign_cli.add_parser(sub)
    ble_cli.add_parser(sub)
    farm_cli.add_parser(sub)
    update_cli.add_parsers(sub)

    args, extra = p.parse_known_args(argv)
    if extra and args.cmd == "ble" and args.seconds is None and len(extra) == 1:
        args.seconds = extra[0]  # `heatrig ble update --sim IMAGE`: the image after an option
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.fn(args))
    except (
        scenario.ScenarioError,
        runner.SimError,
        toolchain.ToolError,
        BoardError,
        limits.LimitsError,
        testrecord.RecordError,
        report.ReportError,
        campaign_spec.CampaignError,
        BleError,
        trace.TraceError,
        ImageError,
        UpdateError,
    ) as e:
        print(f"heatrig: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("heatrig: interrupted", file=sys.stderr)
        return 130


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
    heat_lim, power_lim = limit_files(args.limits)
    extra = {"pace": args.pace} if args.pace else {}
    writer = None
    if args.trace:
        head = trace.header("run", "sim", sc, run_key=trace.run_key(sc, extra), config=extra)
        writer = trace.TraceWriter(args.trace, head)
    try:
        res = runner.run(
            sc, extra_config=extra or None, on_output=writer.rx if writer is not None else None
        )
    finally:
        if writer is not None:
            writer.close()
    rc = report_run(res, args.out or RESULTS_DIR / sc.name, heat_lim, power_lim,
                    as_json=args.json, plot_it=not args.no_plot)  # fmt: skip
    if writer is not None and not args.json:
        print(f"  trace      {writer.path}")
    return rc


def cmd_replay(args: argparse.Namespace) -> int:
    tr = trace.read(args.trace)
    res = trace.decode(tr)
    heat_lim, power_lim = limit_files(args.limits)
    out = args.out or RESULTS_DIR / "replay" / args.trace.name.removesuffix(".trace")
    if not args.json:
        print(
            f"{args.trace}: a {tr.kind} of {res.scenario.name} on {tr.header.get('target')}, "
            f"recorded {tr.header.get('recorded')} by heatrig {tr.header.get('firmware_version')}"
        )
    return report_run(res, out, heat_lim, power_lim, as_json=args.json, plot_it=not args.no_plot)


def report_run(
    res: runner.RunResult,
    out: Path,
    heat_lim: limits.LimitSet | None,
    power_lim: limits.LimitSet | None = None,
    *,
    as_json: bool,
    plot_it: bool,
) -> int:
    """A run's outputs: what `write_run` writes and prints, or the KPIs and
    power figures as JSON alone."""
    if as_json:
        print(json.dumps(run_json(res)))
        return 0
    print(write_run(res, out, heat_lim, power_lim, plots=plot_it))
    return 0


def limit_files(
    paths: list[Path] | None,
) -> tuple[limits.LimitSet | None, limits.LimitSet | None]:
    """The heating and the power limits among the files given (at most one each)."""
    by_group: dict[str, limits.LimitSet] = {}
    for path in paths or []:
        ls = limits.load(path)
        if ls.group in by_group:
            raise limits.LimitsError(
                [f"{path}: a second {ls.group} limits file ({by_group[ls.group].label} is one)"]
            )
        by_group[ls.group] = ls
    return by_group.get(HEATING), by_group.get(POWER)


def run_json(res: runner.RunResult) -> dict[str, object]:
    """The heating KPIs, and the power figures under "power" (`--json`)."""
    k: dict[str, object] = dict(
        kpi.compute(res.series, kpi.true_puffs(res.truth), res.realtime_factor)
    )
    if res.power is not None and len(res.power):
        k["power"] = {
            **power_kpi.summary(res.power),
            "measurements": power_kpi.compute(res.power),
        }
    return k


def write_run(
    res: runner.RunResult,
    out: Path,
    heat_lim: limits.LimitSet | None = None,
    power_lim: limits.LimitSet | None = None,
    *,
    plots: bool = True,
) -> str:
    """Write a run's files (CSVs, plots, KPIs, test record) under `out`, and
    return what `heatrig sim` prints: the parts of the run that apply, in
    plain values, the outcome, and the files."""
    sc = res.scenario
    out.mkdir(parents=True, exist_ok=True)
    puffs = kpi.true_puffs(res.truth)
    k = kpi.compute(res.series, puffs, res.realtime_factor)
    pw = res.power if res.power is not None and len(res.power) else None
    csv_path = out / "telemetry.csv"
    res.series.write_csv(csv_path)
    (out / "kpi.json").write_text(json.dumps(k, indent=2) + "\n")  # the power's: record.json
    (out / "console.log").write_text("\n".join(res.console) + "\n")
    info = {"realtime_factor": k["realtime_factor"], "wall_s": round(res.wall_s, 3)}
    test = testrecord.build(res.series, k, heat_lim, info=info, power=pw, power_limits=power_lim)
    test_path = test.write(out / "record.json")
    lines = [f"{sc.name}: {sc.description}" if sc.description else sc.name]
    if HEATING in test.parts:
        lines.append(kpi.table(k))
    else:
        lines.append(f"  heating    not judged: {test.not_judged[HEATING]}")
        lines.append(f"  simulation speed  {k['realtime_factor']} x real time")
    if POWER not in test.parts:
        lines.append(outcome_lines(test))
    files = [f"  telemetry  {csv_path}"]
    if pw is not None:
        lines.append("\npower")
        lines += [f"  {line}" for line in power_kpi.summary_lines(pw)]
        if POWER in test.parts:
            shown = [m for m in test.of(POWER) if m.value is not None or m.limits is not None]
            lines += ["", measure.table(shown)] if shown else []
            lines.append(outcome_lines(test))
        pw.write_csv(out / "power.csv", res.series.meta)
        files.append(f"  power      {out / 'power.csv'}")
    pngs: list[Path] = []
    if plots and len(res.series):
        pngs.append(plot.heating_curve(res.series, out / "heating_curve.png", puffs))
    if plots and pw is not None:
        pngs += power_plot.write_all(pw, out)
    for i, png in enumerate(pngs):
        files.append(f"  {'plot' if i == 0 else '':<9}  {png}")
    files += [f"  KPIs       {out / 'kpi.json'}", f"  record     {test_path}"]
    return "\n".join([*lines, "", *files])


def outcome_lines(test: testrecord.TestRecord) -> str:
    """The overall outcome, and each measurement that is not a plain pass."""
    lines = [f"\n  outcome    {test.outcome.value.upper()} (limits: {test.limits_label})"]
    for m in test.measurements:
        if m.outcome in (measure.Outcome.FAIL, measure.Outcome.MARGINAL):
            lim = m.limits.describe() if m.limits else ""
            value = f"{measure.format_value(m.value)} {m.units}".rstrip()
            lines.append(f"    {m.outcome.value.upper():<8} {m.label}: {value}, limits {lim}")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    heat_lim, power_lim = limit_files(args.limits)
    runs = [report.load_run(p, heat_lim, power_lim) for p in args.runs]
    out = report.write(runs, args.out or RESULTS_DIR / "report.html", args.title)
    for r in runs:
        print(f"  {r.name:<20} {r.test.outcome.value.upper():<8} {r.test.limits_label}")
    print(f"  report     {out}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    for path in sorted(SCENARIOS_DIR.glob("*.toml")):
        try:
            sc = scenario.load(path)
            print(f"  {path.stem:<16} {sc.description}")
        except scenario.ScenarioError as e:
            print(f"  {path.stem:<16} INVALID: {e.problems[0]}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    import serial

    from hil.rig import deploy

    board = Board(args.port, args.baud)
    try:
        keys = [image.modulus_hex(image.load_public_key(p)) for p in args.update_key]
        report = deploy.deploy(board, plant=not args.hardware, start=not (args.no_start or keys))
        if keys:
            deploy.provision_update_keys(board, keys)
            if not args.no_start:
                board.hard_reset()
                report.boot_event = deploy.wait_boot(board, deploy.BOOT_TIMEOUT_S)
    except (serial.SerialException, OSError) as e:
        raise BoardError(
            f"the link to {args.port} broke during the deploy ({e}): was the board unplugged "
            f"or reset? Deploy again; unchanged files are not copied twice"
        ) from None
    finally:
        board.close()
    print(report.summary())
    return 0


def cmd_vboard(args: argparse.Namespace) -> int:
    import signal
    import tempfile
    import time

    from hil.rig.vboard import VirtualBoard

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # stop the board cleanly when killed, too
    flash = args.flash or Path(tempfile.mkdtemp(prefix="heatrig-vboard-")) / "flash"
    with VirtualBoard(flash) as vb:
        print(f"virtual board on {vb.port} (flash {flash}); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
