"""`heatrig report`: one self-contained HTML file for one or more runs.

A run is a directory written by `heatrig sim` (telemetry.csv, power.csv,
and the test record record.json) or one of those CSVs alone; without a test
record the measurements are computed from the CSVs and judged against the
committed limits. Each run shows the parts judged -- heating, power -- with
their measurements and plots (heating curve and battery; charge curves and
the kit's day); several runs are compared side by side, their heating
curves and their charge curves overlaid. Plots are embedded as PNG data URIs
and the style is inline: the file reads offline, mailed or archived on its
own.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.qa import kpi, limits, measure, power, power_kpi, testrecord
from hil.qa.measure import HEATING, POWER, Measurement, Outcome
from hil.qa.power import PowerSeries
from hil.qa.testrecord import TestRecord
from hil.report import plot, power_plot
from hil.wire import series
from hil.wire.series import TelemetrySeries

OUTCOME_COLORS = {
    Outcome.PASS: "#1e7b34",
    Outcome.MARGINAL: "#b36b00",
    Outcome.FAIL: "#b3261e",
    Outcome.UNSET: "#666666",
}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.o { color: #fff; font-weight: 600; text-transform: uppercase; font-size: 0.85em; }
.src { color: #666; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.meta td:first-child { color: #555; }
"""


class ReportError(ValueError):
    """A run given to the report cannot be read; the message says which and why."""


@dataclass
class Run:
    name: str
    path: Path
    rec: TelemetrySeries
    test: TestRecord
    power: PowerSeries | None = None


def load_run(
    path: Path,
    limit_set: limits.LimitSet | None = None,
    power_limits: limits.LimitSet | None = None,
) -> Run:
    """A run from its directory, its telemetry CSV or its power CSV. With
    `limit_set` (heating) or `power_limits`, its measurements are judged
    again against those limits."""
    tel, pcsv = _run_files(path)
    pw = _read_power(pcsv) if pcsv is not None else None
    rec = _read_telemetry(tel, need_rows=pw is None or not len(pw)) if tel else None
    if rec is None:  # a power CSV alone
        assert pw is not None
        rec = TelemetrySeries(meta=dict(pw.meta), cols={n: np.empty(0) for n, _ in series.COLUMNS})
    folder = (tel or pcsv or path).parent
    rec_json = folder / "record.json"
    if rec_json.is_file() and (tel is None or tel.name == "telemetry.csv"):
        test = testrecord.read(rec_json)
        _judge_again(test, limit_set, power_limits, rec, pw)
    else:
        k = kpi.compute(rec, kpi.puffs_of(rec))
        test = testrecord.build(rec, k, limit_set, power=pw, power_limits=power_limits)
        test.started_at = ""
    name = path.name if path.is_dir() else path.stem
    return Run(name=name, path=path, rec=rec, test=test, power=pw)


def _run_files(path: Path) -> tuple[Path | None, Path | None]:
    """The telemetry CSV and the power CSV of a run (either may be missing)."""
    if path.is_dir():
        tel, pcsv = path / "telemetry.csv", path / "power.csv"
        if not tel.is_file() and not pcsv.is_file():
            raise ReportError(
                f"{path}: no telemetry.csv or power.csv (give a run directory or a CSV)"
            )
        return (tel if tel.is_file() else None), (pcsv if pcsv.is_file() else None)
    if not path.is_file():
        raise ReportError(f"{path}: no telemetry.csv or power.csv (give a run directory or a CSV)")
    try:
        first = path.open(encoding="utf-8").readline().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read: {e}") from None
    if first == "# heatrig power":
        return None, path
    pcsv = path.parent / "power.csv"
    return path, (pcsv if path.name == "telemetry.csv" and pcsv.is_file() else None)


def _read_telemetry(csv: Path, *, need_rows: bool) -> TelemetrySeries:
    try:
        rec = series.read_csv(csv)
    except (OSError, ValueError, IndexError, StopIteration) as e:
        raise ReportError(f"{csv}: not a heatrig telemetry CSV: {e}") from None
    truth = dict(series.TRUTH_COLUMNS)  # a board's record has none
    missing = [name for name, _ in series.COLUMNS if name not in truth and name not in rec.cols]
    if missing:
        raise ReportError(f"{csv}: not a heatrig telemetry CSV: no column {', '.join(missing)}")
    if not len(rec.cols.get("t_s", [])) and need_rows:
        raise ReportError(f"{csv}: no telemetry rows (and no power.csv beside it)")
    for name, _ in series.COLUMNS:  # a record of power frames alone has no rows at all
        rec.cols.setdefault(name, np.empty(0))
    return rec


def _read_power(csv: Path) -> PowerSeries:
    try:
        return power.read_csv(csv)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ReportError(f"{csv}: not a heatrig power CSV: {e}") from None


def _judge_again(
    test: TestRecord,
    heat: limits.LimitSet | None,
    pow_lim: limits.LimitSet | None,
    rec: TelemetrySeries,
    pw: PowerSeries | None,
) -> None:
    """A stored record's measurements judged against other limits."""
    if heat is not None and HEATING in test.parts:
        values = {m.name: m.value for m in test.of(HEATING)}
        judged = measure.evaluate(values, heat.by_name, has_truth=rec.has_truth)
        test.measurements = judged + test.of(POWER)
        test.limits = heat.label
    if pow_lim is not None and pw is not None:
        values = {m.name: m.value for m in test.of(POWER)} or dict(power_kpi.compute(pw))
        judged = measure.evaluate(values, pow_lim.by_name, has_truth=pw.has_truth, group=POWER)
        test.measurements = test.of(HEATING) + judged
        test.power_limits = pow_lim.label


def write(runs: list[Run], out: Path, title: str = "") -> Path:
    return write_page(out, "", render(runs, title))


def write_page(out: Path, title: str, body: str | list[str]) -> Path:
    """Write a whole document, or `body` parts wrapped in one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = body if isinstance(body, str) else page(title, body)
    out.write_text(text, encoding="utf-8")
    return out


def render(runs: list[Run], title: str = "") -> str:
    if not runs:
        raise ReportError("no runs to report")
    title = title or "heatrig report: " + ", ".join(r.name for r in runs)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    verdict = measure.overall([m for r in runs for m in r.test.measurements])
    parts = [
        f"<p>Overall: {badge(verdict)} &nbsp; {len(runs)} run{'s' if len(runs) > 1 else ''}, "
        f"generated {esc(now)}.</p>",
        _summary(runs),
    ]
    if len(runs) > 1:
        parts += ["<h2>Comparison</h2>", _comparison(runs)]
        heating = [r for r in runs if len(r.rec)]
        if len(heating) > 1:
            parts.append(_overlay_img(heating))
        parts += _charge_overlays(runs)
    for r in runs:
        parts.append(_run_section(r))
    parts.append(legend())
    return page(title, parts)


def page(title: str, parts: list[str]) -> str:
    """A whole HTML document: inline style, no external resources."""
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    return "\n".join([*head, *parts, "</body></html>"]) + "\n"


def _summary(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        t = r.test
        counts = {o: sum(m.outcome == o for m in t.measurements) for o in Outcome}
        rows.append(
            [
                f'<a href="#run-{esc(r.name)}">{esc(r.name)}</a>',
                esc(t.meta.get("scenario", "")),
                esc(t.meta.get("firmware_version", "")),
                esc(t.meta.get("target", "")),
                esc(t.meta.get("seed", "")),
                badge(t.outcome),
                str(counts[Outcome.FAIL]),
                str(counts[Outcome.MARGINAL]),
                esc(", ".join(t.parts) or "nothing"),
                esc(t.limits_label),
            ]
        )
    head = ["run", "scenario", "firmware", "target", "seed", "outcome", "fail", "marginal"]
    return table([*head, "judged", "limits"], rows)


def _comparison(runs: list[Run]) -> str:
    """Every measurement any of the runs has, heating then power, side by side."""
    head = ["measurement", "units"] + [esc(r.name) for r in runs]
    rows = []
    present = {m.name for r in runs for m in r.test.measurements}
    group = ""
    for spec in measure.specs_of(present):
        now = POWER if spec.name in measure.POWER_BY_NAME else HEATING
        if now != group:
            group = now
            rows.append([f"<b>{group}</b>", "", *([""] * len(runs))])
        cells = [esc(spec.label), esc(spec.units)]
        for r in runs:
            m = next((x for x in r.test.measurements if x.name == spec.name), None)
            cells.append(_cell(m) if m else "")
        rows.append(cells)
    return table(head, rows)


def _measurement_rows(ms: list[Measurement]) -> list[list[str]]:
    return [
        [
            esc(m.label),
            f'<span class="num">{esc(measure.format_value(m.value))}</span>',
            esc(m.units),
            esc(m.limits.describe()) if m.limits else "",
            badge(m.outcome),
            f'<span class="src">{esc(_why(m))}</span>',
        ]
        for m in ms
    ]


def _run_section(r: Run) -> str:
    t = r.test
    meta_rows = [[esc(k), esc(v)] for k, v in t.meta.items()]
    meta_rows += [["limits", esc(t.limits_label)]]
    if t.started_at:
        meta_rows += [["started at", esc(t.started_at)], ["station", esc(t.station)]]
    for k, v in t.info.items():
        meta_rows.append([esc(k), esc(str(v))])
    head = ["measurement", "value", "units", "limits", "outcome", "note"]
    parts = [
        f'<h2 id="run-{esc(r.name)}">{esc(r.name)} &nbsp; {badge(t.outcome)}</h2>',
        f'<p class="src">{esc(str(r.path))}</p>',
    ]
    for group, why in t.not_judged.items():
        parts.append(f"<p><b>{esc(group)}</b>: not judged &mdash; {esc(why)}.</p>")
    if HEATING in t.parts:
        parts += [
            f"<h3>heating &nbsp; {badge(measure.overall(t.of(HEATING)))}</h3>",
            f'<p class="src">limits: {esc(t.limits)}</p>',
            table(head, _measurement_rows(t.of(HEATING))),
        ]
    if len(r.rec):
        parts.append(_png(lambda p: plot.heating_curve(r.rec, p, kpi.puffs_of(r.rec))))
        parts.append(_png(lambda p: plot.battery(r.rec, p)))
    if POWER in t.parts:
        shown = [m for m in t.of(POWER) if m.value is not None or m.limits is not None]
        parts += [
            f"<h3>power &nbsp; {badge(measure.overall(t.of(POWER)))}</h3>",
            f'<p class="src">limits: {esc(t.power_limits)}</p>',
            table(head, _measurement_rows(shown)),
        ]
    if r.power is not None and len(r.power):
        facts = power_kpi.summary_lines(r.power)
        parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in facts) + "</ul>")
        parts += _power_pngs(r.power)
    parts += [
        "<details><summary>metadata</summary>",
        table(["key", "value"], meta_rows, cls="meta"),
        "</details>",
    ]
    return "\n".join(parts)


def _power_pngs(pw: PowerSeries) -> list[str]:
    """The power plots `heatrig sim` writes for the run, embedded."""
    with tempfile.TemporaryDirectory(prefix="heatrig-report-") as d:
        return [img(p) for p in power_plot.write_all(pw, Path(d))]


def _charge_overlays(runs: list[Run]) -> list[str]:
    """The charges of several runs on shared axes: the first USB charge of
    each run that has one, and the longest holder recharge of each."""
    names = run_labels([r.test.meta for r in runs], [r.name for r in runs])
    out = []
    for which in ("usb", "holder"):
        curves = []
        for label, r in zip(names, runs, strict=True):
            if r.power is None:
                continue
            charges = r.power.charges(which)
            done = [c for c in charges if c.outcome == "done"] or charges
            if not done:
                continue
            pick = done[0] if which == "usb" else max(done, key=lambda c: c.duration_s)
            curves.append(power_plot.Curve(label, r.power, pick))
        if len(curves) > 1:
            what = "first USB charge" if which == "usb" else "longest holder recharge"
            head = _overlay_title(curves, f"{len(curves)} runs, the {what} of each")
            out.append(_charge_overlay_png(curves, head))
    return out


def _charge_overlay_png(curves: list[power_plot.Curve], head: str) -> str:
    return _png(lambda p: power_plot.charge_overlay(curves, p, title_text=head))


def _overlay_title(curves: list[power_plot.Curve], what: str) -> str:
    scen = sorted({c.ps.meta.get("scenario", "?") for c in curves})
    fw = sorted({c.ps.meta.get("firmware_version", "?") for c in curves})
    return f"{', '.join(scen)} \u2014 firmware {', '.join(fw)}: {what}"


def _overlay_img(runs: list[Run]) -> str:
    metas = [r.test.meta for r in runs]
    labels = run_labels(metas, [r.name for r in runs])
    pairs = [(label, r.rec) for label, r in zip(labels, runs, strict=True)]
    swept = sweep_key(metas)
    if swept is None:
        return _png(lambda p: plot.overlay(pairs, p))
    values = [float(m[swept]) for m in metas]
    return _png(lambda p: plot.overlay(pairs, p, color_values=values, color_label=swept))


def _differing(metas: list[dict[str, str]]) -> list[str]:
    if len(metas) < 2:
        return []
    return [k for k in metas[0] if len({m.get(k) for m in metas}) > 1]


def run_labels(metas: list[dict[str, str]], names: list[str]) -> list[str]:
    """Legend labels that tell runs apart: the metadata that differs between
    them (firmware version, a swept parameter), else the run names."""
    keys = _differing(metas)
    if not keys:
        return names
    return [", ".join(f"{k} {m.get(k, '?')}" for k in keys[:3]) for m in metas]


def sweep_key(metas: list[dict[str, str]]) -> str | None:
    """The one numeric setting that differs between many runs (the seed
    aside): a sweep, drawn on a colour scale rather than a long legend."""
    keys = [k for k in _differing(metas) if k != "seed"]
    if len(metas) <= 4 or len(keys) != 1:
        return None
    try:
        [float(m[keys[0]]) for m in metas]
    except (KeyError, ValueError):
        return None
    return keys[0]


def _why(m: Measurement) -> str:
    parts = [m.note] if m.note else []
    if m.limits and m.limits.source:
        parts.append(m.limits.source)
    return "; ".join(parts)


def _cell(m: Measurement) -> str:
    color = OUTCOME_COLORS[m.outcome]
    return (
        f'<span style="color:{color};font-weight:600" title="{esc(m.outcome.value)}">'
        f"{esc(measure.format_value(m.value))}</span>"
    )


def badge(o: Outcome) -> str:
    return (
        f'<span class="o" style="background:{OUTCOME_COLORS[o]};padding:1px 6px">{o.value}</span>'
    )


def legend() -> str:
    items = " ".join(badge(o) for o in Outcome)
    return (
        f"<h2>Outcomes</h2><p>{items}</p><p class=src>marginal: within the limits, outside "
        "the marginal band; unset: no limit is set, or the target cannot measure it.</p>"
    )


def _png(draw: Callable[[Path], Path]) -> str:
    with tempfile.TemporaryDirectory(prefix="heatrig-report-") as d:
        return img(draw(Path(d) / "plot.png"))


def img(png: Path) -> str:
    """A PNG file embedded as a data URI."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{esc(png.stem)}" src="data:image/png;base64,{data}">'


def table(head: list[str], rows: Iterable[list[str]], cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    out = [f"<table{c}><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{x}</td>" for x in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def esc(s: str) -> str:
    return html.escape(s, quote=True)
