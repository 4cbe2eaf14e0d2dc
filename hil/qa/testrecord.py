"""The test record of one run (JSON): who and what was tested -- firmware
version, target, scenario, seed, profile, regime -- every measurement with
its limits and outcome, the overall outcome, and when and where it ran.

A run is judged on whichever of its two parts apply: heating (the session's
KPIs, against limits/<profile>-<regime>.toml) when it recorded a heating
session at the control rate, and power (hil/qa/power_kpi.py, against
limits/power-<scenario>.toml) when it has power frames and power limits, or
nothing else to judge it by. A part not judged is named with the reason
(a charge-only run has no heating KPIs to print).

Measurements are a pure function of the run (scenario and seed on the
simulator); `started_at`, `station` and `info` (speed) describe the
execution and differ from one execution to the next.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.qa import limits as limits_mod
from hil.qa import measure, power_kpi
from hil.qa.measure import HEATING, POWER, Measurement, Outcome
from hil.qa.power import PowerSeries
from hil.wire.series import TelemetrySeries

FORMAT = "heatrig test record"
FORMAT_VERSION = 2  # 2: power measurements, power_limits, not_judged


class RecordError(ValueError):
    """A test record file cannot be read; the message says which and why."""


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class

    meta: dict[str, str]
    measurements: list[Measurement]
    limits: str  # the heating limits file the outcomes were judged against, or "none"
    started_at: str = ""
    station: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    power_limits: str = ""  # the power limits file, "none"; "" when power is not judged
    not_judged: dict[str, str] = field(default_factory=dict)  # part -> why not

    @property
    def outcome(self) -> Outcome:
        return measure.overall(self.measurements)

    @property
    def parts(self) -> list[str]:
        """The parts of the run judged: heating, power, or both."""
        out = [HEATING] if HEATING not in self.not_judged else []
        return out + ([POWER] if self.power_limits else [])

    @property
    def limits_label(self) -> str:
        """The limits files of the judged parts, for people."""
        labels = [self.limits] if HEATING in self.parts else []
        labels += [self.power_limits] if POWER in self.parts else []
        return ", ".join(x for x in labels if x != "none") or "none"

    def of(self, group: str) -> list[Measurement]:
        return [m for m in self.measurements if m.group == group]

    def value(self, name: str) -> measure.Value:
        return next((m.value for m in self.measurements if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        m = self.meta
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "outcome": self.outcome.value,
            "firmware_version": m.get("firmware_version", ""),
            "target": m.get("target", ""),
            "scenario": m.get("scenario", ""),
            "seed": _int(m.get("seed")),
            "profile": m.get("profile", ""),
            "regime": m.get("regime", ""),
            "limits": self.limits,
            "power_limits": self.power_limits,
            "not_judged": dict(self.not_judged),
            "started_at": self.started_at,
            "station": self.station,
            "metadata": dict(m),
            "measurements": [x.to_json() for x in self.measurements],
            "info": self.info,
        }

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path


def build(
    rec: TelemetrySeries,
    kpi: dict[str, object],
    limits: limits_mod.LimitSet | None = None,
    *,
    info: dict[str, Any] | None = None,
    power: PowerSeries | None = None,
    power_limits: limits_mod.LimitSet | None = None,
) -> TestRecord:
    """Judge a run's heating KPIs and its power, whichever apply. Without
    explicit limits, the committed ones apply: for heating, those of the
    run's profile and regime (outcomes unset if there are none, or if the
    run is a series of sessions: the limits are a session's); for power,
    those of its scenario."""
    meta = dict(rec.meta)
    not_judged: dict[str, str] = {}
    ms: list[Measurement] = []
    label = ""
    why = heating_not_judged(rec)
    if why is None:
        if limits is None and meta.get("sessions", "1") == "1":
            limits = limits_mod.for_run(meta.get("profile", ""), meta.get("regime", ""))
        ms = measure.evaluate(kpi, limits.by_name if limits else None, has_truth=rec.has_truth)
        label = limits.label if limits else "none"
    else:
        not_judged[HEATING] = why
    power_label = ""
    if power is not None and len(power):
        if power_limits is None:
            power_limits = limits_mod.power_for_run(meta.get("scenario", ""))
        if power_limits is not None or why is not None:
            pk = power_kpi.compute(power)
            lim = power_limits.by_name if power_limits else None
            ms += measure.evaluate(pk, lim, has_truth=power.has_truth, group=POWER)
            power_label = power_limits.label if power_limits else "none"
    elif why is not None:
        not_judged[POWER] = "no power frames in this run"
    return TestRecord(
        meta=meta,
        measurements=ms,
        limits=label or "none",
        started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        station=platform.node(),
        info=dict(info or {}),
        power_limits=power_label,
        not_judged=not_judged,
    )


def heating_not_judged(rec: TelemetrySeries) -> str | None:
    """Why a run's heating is not judged, or None if it is."""
    if rec.meta.get("sessions") == "0":
        return "no heating session in this run"
    if not len(rec):
        return "no control telemetry recorded ([record] telemetry = false)"
    return None


def read(path: Path) -> TestRecord:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecordError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not JSON: {e}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise RecordError(f"{path}: not a {FORMAT}")
    try:
        return TestRecord(
            meta={str(k): str(v) for k, v in d.get("metadata", {}).items()},
            measurements=[Measurement.from_json(x) for x in d["measurements"]],
            limits=str(d.get("limits", "none")),
            started_at=str(d.get("started_at", "")),
            station=str(d.get("station", "")),
            info=dict(d.get("info", {})),
            power_limits=str(d.get("power_limits", "")),
            not_judged={str(k): str(v) for k, v in d.get("not_judged", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise RecordError(f"{path}: malformed measurement: {e!r}") from None


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None
