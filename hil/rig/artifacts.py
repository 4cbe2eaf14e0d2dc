"""What a test leaves behind, and what it needs from its target.

Per test, under RESULTS/<target>/<test>/: dut.log (everything that crossed
the link), one telemetry CSV and timing JSON per run (a scenario, or the live
session), on failure the heating curve of each run as a PNG, and with
--keep-traces each run's and live session's link trace (hil/rig/trace.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from hil.qa import kpi, timing
from hil.report import plot
from hil.rig.dut import Dut
from hil.rig.targets import Target
from hil.wire.series import TelemetrySeries

# why a test marked with a capability (hil/rig/targets.py Capabilities) is skipped
REASONS = {
    "power_hw": (
        "needs real power hardware (heater, cells, sense resistors): run with --target serial "
        "--port PORT on a board deployed with `heatrig deploy --hardware`"
    ),
    "radio": "needs a real BLE radio: run with --target serial --port PORT on an ESP32",
    "plant": "needs the simulated plant (scenarios, puffs, faults); this target has real hardware",
    "heap_budget": (
        "needs a target that holds the firmware to the ESP32's heap budget: the simulator "
        "or the virtual board"
    ),
}

_csv_written: dict[str, Path] = {}  # by content: a cached run's CSV, written once and linked after


class NotCapable(Exception):
    """The target lacks what the test needs (the test is skipped with this reason)."""


def check_capabilities(target: Target, markers: list[str]) -> None:
    needed = [m for m in markers if m in REASONS]
    if not needed:
        return  # a board is not reached for a test that needs nothing of it
    caps = target.capabilities()
    for m in needed:
        if not caps.has(m):
            raise NotCapable(f"{REASONS[m]} (target: {target.describe()})")


def test_dir(root: Path, target: Target, nodeid: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1]).strip("_")
    module = Path(nodeid.split("::", 1)[0]).stem
    out = root / target.name / module / name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        if old.is_file():
            old.unlink()
    return out


def _fingerprint(rec: TelemetrySeries) -> str:
    """What the CSV is made of (its header and columns), hashed: a run served
    again from a target's cache has the same, a run that differs another."""
    h = hashlib.sha256(json.dumps(list(rec.meta.items())).encode())
    for name in sorted(rec.cols):
        col = np.ascontiguousarray(rec.cols[name])
        h.update(f"{name} {col.dtype.str} {col.shape}".encode())
        h.update(col.tobytes())
    return h.hexdigest()


def _write_csv(rec: TelemetrySeries, path: Path) -> None:
    key = _fingerprint(rec)
    first = _csv_written.get(key)
    if first is not None and first.exists():
        path.unlink(missing_ok=True)
        try:
            os.link(first, path)
            return
        except OSError:
            pass
    rec.write_csv(path)
    _csv_written[key] = path


def save(d: Dut, out: Path, *, failed: bool) -> list[tuple[str, str]]:
    """Write the test's artifacts; (name, path) pairs for the JUnit report."""
    props: list[tuple[str, str]] = [("log", str(out / "dut.log"))]
    names: dict[str, int] = {}
    Run = tuple[str, TelemetrySeries, dict[str, str], list[kpi.PuffWindow] | None, Path | None]
    runs: list[Run] = []
    for art in d.runs:
        res = art.result
        runs.append((art.label, res.series, res.info, kpi.true_puffs(res.truth), res.trace))
    if d.last_live_series is not None:
        runs.append(("live", d.last_live_series, {}, None, None))  # its trace: d.traces
    for label, rec, info, puffs, traced in runs:
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
        if traced is not None and traced.exists():
            props.append(("trace", str(_link_trace(traced, out / f"{stem}.trace"))))
    props += [("trace", str(p)) for p in d.traces]
    return props


def _link_trace(src: Path, dst: Path) -> Path:
    """A run's trace (kept once per run by its target) in the test's folder."""
    if src.parent == dst.parent:
        return src
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst
