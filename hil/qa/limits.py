"""Limit files: one TOML file per heating profile and puffing regime,
`limits/<profile>-<regime>.toml`, one table per measurement:

    [limits]
    profile = "standard"
    regime = "hci"

    [time_to_setpoint_s]
    max = 10.0
    marginal_max = 5.0
    source = "README: within 2 % of the set-point in 10 s"

and one per power scenario, `limits/power-<scenario>.toml`, with the power
measurements (hil/qa/power_kpi.py) in the same form:

    [limits]
    scenario = "multi_session"

    [sessions_per_charge]
    min = 20
    source = "docs/reference.md#cells-and-charging: 20 holder charges per charger charge"

A file holds heating measurements or power ones, not both. The whole file
is checked when it is read; every problem is reported with its line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil import tomlfile
from hil.paths import ROOT
from hil.qa.measure import HEATING, KPI_BY_NAME, POWER, POWER_BY_NAME, Limits

LIMITS_DIR = ROOT / "limits"
_HEAD = ("profile", "regime", "scenario", "description")  # the [limits] table
_KNOWN = {**KPI_BY_NAME, **POWER_BY_NAME}
_KEYS = ("min", "max", "marginal_min", "marginal_max", "equals", "source")


class LimitsError(tomlfile.TomlFileError):
    """A limits file is missing or invalid; the message lists every problem."""


@dataclass
class LimitSet:
    path: Path | None
    profile: str = ""
    regime: str = ""
    description: str = ""
    by_name: dict[str, Limits] = field(default_factory=dict)
    scenario: str = ""  # a power file's scenario

    def get(self, name: str) -> Limits | None:
        return self.by_name.get(name)

    @property
    def group(self) -> str:
        """What the file judges: power measurements, or heating KPIs."""
        if self.scenario or (self.by_name and set(self.by_name) <= set(POWER_BY_NAME)):
            return POWER
        return HEATING

    @property
    def label(self) -> str:
        if self.path is None:
            return "(inline limits)"
        try:
            return str(self.path.resolve().relative_to(ROOT))
        except ValueError:
            return str(self.path)


def path_for(profile: str, regime: str) -> Path:
    return LIMITS_DIR / f"{profile}-{regime}.toml"


def for_run(profile: str, regime: str) -> LimitSet | None:
    """The committed limits of a profile and regime, or None if there are none."""
    p = path_for(profile, regime)
    return load(p) if p.exists() else None


def power_path_for(scenario: str) -> Path:
    return LIMITS_DIR / f"power-{scenario}.toml"


def power_for_run(scenario: str) -> LimitSet | None:
    """The committed power limits of a scenario, or None if there are none."""
    p = power_path_for(scenario)
    return load(p) if scenario and p.exists() else None


def load(path: Path) -> LimitSet:
    return parse(tomlfile.read(path, LimitsError), path)


def parse(text: str, path: Path | None = None) -> LimitSet:
    where = str(path) if path else "<limits>"
    data = tomlfile.loads(text, where, LimitsError)
    ck = tomlfile.Checker(text, where)
    head = data.pop("limits", {})
    if not isinstance(head, dict):
        ck.fail("limits", None, "must be a table")
        ck.raise_problems(LimitsError)
    ls = LimitSet(
        path=path,
        profile=str(head.get("profile", "")),
        regime=str(head.get("regime", "")),
        description=str(head.get("description", "")),
        scenario=str(head.get("scenario", "")),
    )
    ck.check_keys(head, "limits", _HEAD)
    if ls.scenario and (ls.profile or ls.regime):
        ck.fail("limits", "scenario", "a power file's; profile and regime are a heating file's")
    power_file = bool(ls.scenario) or _power_file(data)
    for name, table in data.items():
        if not ck.known_table(name, _KNOWN, unknown="no such measurement", list_allowed=False):
            continue
        if (name in POWER_BY_NAME) != power_file:
            kind = "a power" if power_file else "a heating"
            ck.fail(name, None, f"not a measurement of {kind} file: heating and power go apart")
            continue
        if not isinstance(table, dict):
            ck.fail(name, None, "must be a table")
            continue
        lim = _limits(ck, name, table)
        if lim is not None:
            ls.by_name[name] = lim
    ck.raise_problems(LimitsError)
    return ls


def _limits(ck: tomlfile.Checker, name: str, table: dict[str, Any]) -> Limits | None:
    ok = True
    for key, v in table.items():
        if not ck.known(name, key, _KEYS):
            ok = False
        elif key == "source":
            if not isinstance(v, str):
                ck.fail(name, key, f"must be a string, got {v!r}")
                ok = False
        elif key == "equals":
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                ck.fail(name, key, f"must be a number or a string, got {v!r}")
                ok = False
        elif not tomlfile.is_number(v):
            ck.fail(name, key, f"must be a number, got {v!r}")
            ok = False
    if not ok:
        return None
    if "equals" in table and set(table) & {"min", "max", "marginal_min", "marginal_max"}:
        ck.fail(name, "equals", "an exact value takes no range and no marginal band")
        return None
    if not set(table) & {"equals", "min", "max"}:
        ck.fail(name, None, "needs min, max or equals")
        return None
    lo, hi = table.get("min", -math.inf), table.get("max", math.inf)
    mlo, mhi = table.get("marginal_min", lo), table.get("marginal_max", hi)
    if not lo <= mlo <= mhi <= hi:
        ck.fail(name, None, "needs min <= marginal_min <= marginal_max <= max")
        return None
    return Limits(
        min=_f(table.get("min")),
        max=_f(table.get("max")),
        marginal_min=_f(table.get("marginal_min")),
        marginal_max=_f(table.get("marginal_max")),
        equals=table.get("equals"),
        source=table.get("source", ""),
    )


def _power_file(data: dict[str, Any]) -> bool:
    """A file without a scenario is judged by its first measurement."""
    first = next((n for n in data if n in _KNOWN), None)
    return first in POWER_BY_NAME


def _f(v: Any) -> float | None:
    return None if v is None else float(v)
