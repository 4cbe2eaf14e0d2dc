"""Heating KPIs and power figures as measurements with limits (OpenHTF's model).

A measurement is a KPI with a name, units, the limits it is judged against
and an outcome. Limits are a range (either end optional) or an exact value,
with an optional marginal band inside the range: a value within the limits
but outside [marginal_min, marginal_max] passes as *marginal* -- it meets the
requirement with less margin than the engineers want.

Outcomes:
- pass, marginal, fail: judged against the limits;
- unset: nothing to judge, because no limit is set for it, or the target
  cannot measure it (a board has no true blade temperature).

A KPI the target can measure but that has no value (the blade never reached
its set-point, say) fails against any limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from hil.qa.kpi import ASCII_UNITS, KPIS, KpiSpec
from hil.qa.power_kpi import POWER_KPIS


class Outcome(str, Enum):
    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    UNSET = "unset"


Value = float | int | str | None


@dataclass(frozen=True)
class Limits:
    min: float | None = None
    max: float | None = None
    marginal_min: float | None = None
    marginal_max: float | None = None
    equals: float | str | None = None
    source: str = ""  # where the limit comes from, for the reader of a report

    def check(self, value: Value) -> Outcome:
        if value is None:
            return Outcome.FAIL
        if self.equals is not None:
            return Outcome.PASS if value == self.equals else Outcome.FAIL
        if isinstance(value, str) or math.isnan(value):
            return Outcome.FAIL
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            return Outcome.FAIL
        if (self.marginal_min is not None and value < self.marginal_min) or (
            self.marginal_max is not None and value > self.marginal_max
        ):
            return Outcome.MARGINAL
        return Outcome.PASS

    def slack(self, value: Value) -> float | None:
        """Distance from the value to the nearest limit, in the measurement's
        units; negative outside the limits, -inf for no value. None for a
        text limit or none at all."""
        if not self.numeric:
            return None
        lo, hi = self.bounds()
        if lo is None and hi is None:
            return None
        if value is None or isinstance(value, str) or math.isnan(value):
            return -math.inf
        sides = [value - lo] if lo is not None else []
        if hi is not None:
            sides.append(hi - value)
        return float(min(sides))

    @property
    def numeric(self) -> bool:
        return not isinstance(self.equals, str)

    def bounds(self) -> tuple[float | None, float | None]:
        """Lower and upper specification limits (equal for an exact value)."""
        if self.equals is not None:
            assert not isinstance(self.equals, str)
            return float(self.equals), float(self.equals)
        return self.min, self.max

    def describe(self) -> str:
        """The limits for people: "<= 10; marginal > 5"."""
        if self.equals is not None:
            return f"= {self.equals}"
        if self.min is not None and self.max is not None:
            text = f"{_num(self.min)} .. {_num(self.max)}"
        elif self.min is not None:
            text = f"\u2265 {_num(self.min)}"
        elif self.max is not None:
            text = f"\u2264 {_num(self.max)}"
        else:
            text = "any"
        marginal = []
        if self.marginal_min is not None:
            marginal.append(f"< {_num(self.marginal_min)}")
        if self.marginal_max is not None:
            marginal.append(f"> {_num(self.marginal_max)}")
        return f"{text}; marginal {' or '.join(marginal)}" if marginal else text

    def to_json(self) -> dict[str, object]:
        names = ("min", "max", "marginal_min", "marginal_max", "equals", "source")
        return {k: getattr(self, k) for k in names if getattr(self, k) not in (None, "")}


# The two parts of a run a measurement judges.
HEATING = "heating"
POWER = "power"
# The KPIs judged as measurements (hil/qa/kpi.py has them all), and the power
# measurements (hil/qa/power_kpi.py).
KPI_SPECS = tuple(spec for spec in KPIS if spec.measured)
KPI_BY_NAME = {s.name: s for s in KPI_SPECS}
POWER_SPECS = POWER_KPIS
POWER_BY_NAME = {s.name: s for s in POWER_SPECS}
SPECS = {HEATING: KPI_SPECS, POWER: POWER_SPECS}


@dataclass(frozen=True)
class Measurement:
    name: str
    label: str
    units: str
    value: Value
    limits: Limits | None
    outcome: Outcome
    note: str = ""
    group: str = HEATING  # which part of the run it judges: heating or power

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "group": self.group,
            "name": self.name,
            "label": self.label,
            "units": self.units,
            "value": self.value,
            "outcome": self.outcome.value,
            "limits": self.limits.to_json() if self.limits else None,
        }
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Measurement:
        lim = d.get("limits")
        value = d.get("value")
        assert value is None or isinstance(value, (int, float, str))
        return cls(
            name=str(d["name"]),
            label=str(d.get("label", d["name"])),
            units=str(d.get("units", "")),
            value=value,
            limits=Limits(**lim) if isinstance(lim, dict) else None,
            outcome=Outcome(str(d["outcome"])),
            note=str(d.get("note", "")),
            group=str(d.get("group", HEATING)),
        )


def evaluate(
    kpi: Mapping[str, object],
    limits: dict[str, Limits] | None,
    *,
    has_truth: bool,
    group: str = HEATING,
) -> list[Measurement]:
    """Every measurement of the KPI dict (of one group: heating KPIs or
    power measurements), judged against the limits."""
    out = []
    for spec in SPECS[group]:
        raw = kpi.get(spec.name)
        value: Value = raw if raw is None or isinstance(raw, (int, float, str)) else str(raw)
        lim = (limits or {}).get(spec.name)
        note = ""
        if spec.needs_truth and not has_truth:
            outcome, note = Outcome.UNSET, "needs the simulator's truth"
        elif lim is None:
            outcome = Outcome.UNSET
            note = "no limit set"
        else:
            outcome = lim.check(value)
            if value is None:
                note = "no value: not reached or not measured"
        out.append(Measurement(spec.name, spec.label, spec.units, value, lim, outcome, note, group))
    return out


def specs_of(names: Iterable[str]) -> list[KpiSpec]:
    """The specs of these measurement names, heating then power, in table order."""
    wanted = set(names)
    return [s for g in (KPI_SPECS, POWER_SPECS) for s in g if s.name in wanted]


def overall(measurements: list[Measurement]) -> Outcome:
    """fail if any fails, else marginal if any is marginal, else pass; unset
    when nothing was judged."""
    seen = {m.outcome for m in measurements}
    for o in (Outcome.FAIL, Outcome.MARGINAL, Outcome.PASS):
        if o in seen:
            return o
    return Outcome.UNSET


def format_value(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    return str(value)


def table(measurements: list[Measurement]) -> str:
    """The measurements for people, in plain ASCII for any terminal: label,
    value and units, limits, outcome."""
    rows = [
        (
            m.label,
            f"{format_value(m.value)} {m.units.translate(ASCII_UNITS)}".rstrip(),
            (m.limits.describe() if m.limits else "").translate(ASCII_UNITS),
            m.outcome.value.upper() if m.outcome != Outcome.UNSET else "-",
        )
        for m in measurements
    ]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"  {a:<{w[0]}}  {b:>{w[1]}}  {c:<{w[2]}}  {d}".rstrip() for a, b, c, d in rows
    )


def _num(x: float) -> str:
    return f"{x:g}"
