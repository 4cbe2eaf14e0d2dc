"""What a test leaves behind, and what it needs from its target.

Per test, under RESULTS/<target>/<test>/: dut.log (everything that crossed
the link), one telemetry CSV and timing JSON per run (a scenario, or the live
session), and on failure the heating curve of each run as a PNG.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from hil.qa import kpi, timing
from hil.report import plot
from hil.rig.dut import Dut
from hil.rig.targets import Target
from hil.wire.series import TelemetrySeries

REASONS = {
    "power_hw": (
        "power_hw",
        "needs real power hardware (heater, cells, sense resistors): run with --target serial "
        "--port PORT on a board deployed with `heatrig deploy --hardware`",
    ),
    "radio": ("radio", "needs a real BLE radio: run with --target serial --port PORT on an ESP32"),
    "plant": (
        "has_plant",
        "needs the simulated plant (scenarios, puffs, faults); this target has real hardware",
    ),
}

_csv_written: dict[int, Path] = {}  # a cached run's CSV, written once and linked after


class NotCapable(Exception):
    """The target lacks what the test needs (the test is skipped with this reason)."""


def check_capabilities(target: Target, markers: list[str]) -> None:
    if "plant" in markers or "power_hw" in markers or "radio" in markers:
        board = getattr(target, "board", None)
        if callable(board):
            board()  # learn what the board has
    for m in markers:
        if m in REASONS:
            attr, reason = REASONS[m]
            if not getattr(target, attr):
                raise NotCapable(f"{reason} (target: {target.describe()})")


def test_dir(root: Path, target: Target, nodeid: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")
    module = Path(nodeid.split("::", 1)[0]).stem
    out = root / target.name / module / name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        if old.is_file():
            old.unlink()
    return out


def _write_csv(rec: TelemetrySeries, path: Path) -> None:
    first = _csv_written.get(id(rec))
    if first is not None and first.exists():
        path.unlink(missing_ok=True)
        try:
            os.link(first, path)
            return
        except OSError:
            pass
    rec.write_csv(path)
    _csv_written[id(rec)] = path


def save(d: Dut, out: Path, *, failed: bool) -> list[tuple[str, str]]:
    """Write the test's artifacts; (name, path) pairs for the JUnit report."""
    props: list[tuple[str, str]] = [("log", str(out / "dut.log"))]
    names: dict[str, int] = {}
    runs: list[tuple[str, TelemetrySeries, dict[str, str], list[kpi.PuffWindow] | None]] = []
    for art in d.runs:
        res = art.result
        runs.append((art.label, res.series, res.info, kpi.true_puffs(res.truth)))
    if d.last_live_series is not None:
        runs.append(("live", d.last_live_series, {}, None))
    for label, rec, info, puffs in runs:
        n = names.get(label, 0)
        names[label] = n + 1
        stem = label if n == 0 else f"{label}-{n + 1}"
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
        csv = out / f"{stem}.csv"
        _write_csv(rec, csv)
        props.append(("telemetry", str(csv)))
        tm = timing.from_record(rec, info)
        (out / f"{stem}.timing.json").write_text(json.dumps(tm.as_dict(), indent=1) + "\n")
        if failed and len(rec):
            png = plot.heating_curve(rec, out / f"{stem}.png", puffs, title=f"{stem} (failed)")
            props.append(("plot", str(png)))
    return props
