"""The test record of one run (JSON): who and what was tested -- firmware
version, target, scenario, seed, profile, regime -- every measurement with
its limits and outcome, the overall outcome, and when and where it ran.

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
from hil.qa import measure
from hil.qa.measure import Measurement, Outcome
from hil.wire.series import TelemetrySeries

FORMAT = "heatrig test record"
FORMAT_VERSION = 1


class RecordError(ValueError):
    """A test record file cannot be read; the message says which and why."""


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class

    meta: dict[str, str]
    measurements: list[Measurement]
    limits: str  # the limits file the outcomes were judged against, or "none"
    started_at: str = ""
    station: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return measure.overall(self.measurements)

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
) -> TestRecord:
    """Judge a run's KPIs. Without explicit limits, the committed ones for
    the run's profile and regime apply (outcomes unset if there are none, or
    if the run is a series of sessions: the limits are a session's)."""
    if limits is None and rec.meta.get("sessions", "1") == "1":
        limits = limits_mod.for_run(rec.meta.get("profile", ""), rec.meta.get("regime", ""))
    ambient = _float(rec.meta.get("ambient_c"))
    ms = measure.evaluate(
        kpi,
        limits.at(ambient) if limits else None,
        has_truth=rec.has_truth,
        refusal_allowed=bool(
            limits and limits.refusal_allowed(ambient, rec.meta.get("refused", ""))
        ),
    )
    return TestRecord(
        meta=dict(rec.meta),
        measurements=ms,
        limits=limits.label if limits else "none",
        started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        station=platform.node(),
        info=dict(info or {}),
    )


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
        )
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise RecordError(f"{path}: malformed measurement: {e!r}") from None


def _float(s: str | None) -> float | None:
    try:
        return float(s) if s is not None else None
    except ValueError:
        return None


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None
