"""`heatrig report`: one self-contained HTML file for one or more runs.

A run is a directory written by `heatrig sim` (telemetry.csv, and the test
record record.json) or a telemetry CSV alone; without a test record the
KPIs are computed from the CSV and judged against the committed limits.
Plots are embedded as PNG data URIs and the style is inline: the file reads
offline, mailed or archived on its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hil.qa import kpi, limits, measure, testrecord
from hil.qa.measure import Measurement, Outcome
from hil.qa.testrecord import TestRecord
from hil.report import plot
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


def load_run(path: Path, limit_set: limits.LimitSet | None = None) -> Run:
    """A run from its directory or telemetry CSV. With `limit_set`, its
    measurements are judged again against those limits."""
    csv = path / "telemetry.csv" if path.is_dir() else path
    if not csv.is_file():
        raise ReportError(f"{path}: no telemetry.csv (give a run directory or a telemetry CSV)")
    try:
        rec = series.read_csv(csv)
    except (OSError, ValueError, IndexError, StopIteration) as e:
        raise ReportError(f"{csv}: not a heatrig telemetry CSV: {e}") from None
    truth = dict(series.TRUTH_COLUMNS)  # a board's record has none
    missing = [name for name, _ in series.COLUMNS if name not in truth and name not in rec.cols]
    if missing:
        raise ReportError(f"{csv}: not a heatrig telemetry CSV: no column {', '.join(missing)}")
    if not len(rec):
        raise ReportError(f"{csv}: no telemetry rows")
    rec_json = csv.parent / "record.json"
    if rec_json.is_file():
        test = testrecord.read(rec_json)
        if limit_set is not None:
            values = {m.name: m.value for m in test.measurements}
            test.measurements = measure.evaluate(values, limit_set.by_name, has_truth=rec.has_truth)
            test.limits = limit_set.label
    else:
        k = kpi.compute(rec, kpi.puffs_of(rec))
        test = testrecord.build(rec, k, limit_set)
        test.started_at = ""
    name = path.name if path.is_dir() else path.stem
    return Run(name=name, path=path, rec=rec, test=test)


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
        parts += ["<h2>Comparison</h2>", _comparison(runs), _overlay_img(runs)]
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
                esc(t.limits),
            ]
        )
    head = ["run", "scenario", "firmware", "target", "seed", "outcome", "fail", "marginal"]
    return table([*head, "limits"], rows)


def _comparison(runs: list[Run]) -> str:
    head = ["measurement", "units"] + [esc(r.name) for r in runs]
    rows = []
    for spec in measure.KPI_SPECS:
        cells = [esc(spec.label), esc(spec.units)]
        for r in runs:
            m = next((x for x in r.test.measurements if x.name == spec.name), None)
            cells.append(_cell(m) if m else "")
        rows.append(cells)
    return table(head, rows)


def _run_section(r: Run) -> str:
    t = r.test
    meta_rows = [[esc(k), esc(v)] for k, v in t.meta.items()]
    meta_rows += [["limits", esc(t.limits)]]
    if t.started_at:
        meta_rows += [["started at", esc(t.started_at)], ["station", esc(t.station)]]
    for k, v in t.info.items():
        meta_rows.append([esc(k), esc(str(v))])
    rows = [
        [
            esc(m.label),
            f'<span class="num">{esc(measure.format_value(m.value))}</span>',
            esc(m.units),
            esc(m.limits.describe()) if m.limits else "",
            badge(m.outcome),
            f'<span class="src">{esc(_why(m))}</span>',
        ]
        for m in t.measurements
    ]
    return "\n".join(
        [
            f'<h2 id="run-{esc(r.name)}">{esc(r.name)} &nbsp; {badge(t.outcome)}</h2>',
            f'<p class="src">{esc(str(r.path))}</p>',
            table(["measurement", "value", "units", "limits", "outcome", "note"], rows),
            _png(lambda p: plot.heating_curve(r.rec, p, kpi.puffs_of(r.rec))),
            _png(lambda p: plot.battery(r.rec, p)),
            "<details><summary>metadata</summary>",
            table(["key", "value"], meta_rows, cls="meta"),
            "</details>",
        ]
    )


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
