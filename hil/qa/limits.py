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

A file holds heating measurements or power ones, not both.

Where physics makes a limit impossible at an edge of the envelope, a band of
ambient temperature says so -- its own limits for the measurements it names,
the reason and the measured figure (all required), and the refusals (fault
names) with which a session may be refused up front there:

    [[band]]
    ambient_c = [0.0, 10.0]     # from, to (the upper end excluded, but 50 C's)
    reason = "cold air through the plug: the heater is at full power"
    measured = "52.6 C at 0.2 C (campaigns/hci_monte_carlo.toml, 200 runs)"
    refusals = ["holder_low"]

    [band.max_puff_dip_c]
    max = 55.0

The whole file is checked when it is read; every problem is reported with
its line.
"""

from __future__ import annotations

import itertools
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
_BAND = ("ambient_c", "reason", "measured", "refusals")
AMBIENT_MAX_C = 50.0  # the envelope's top: a band ending here includes it


@dataclass
class Band:
    """Limits that replace the file's within a range of ambient temperature."""

    lo_c: float
    hi_c: float
    reason: str
    measured: str
    refusals: tuple[str, ...] = ()
    by_name: dict[str, Limits] = field(default_factory=dict)

    def holds(self, ambient_c: float) -> bool:
        return self.lo_c <= ambient_c < self.hi_c or ambient_c == self.hi_c == AMBIENT_MAX_C

    def describe(self) -> str:
        return f"ambient {self.lo_c:g}-{self.hi_c:g} C"


class LimitsError(tomlfile.TomlFileError):
    """A limits file is missing or invalid; the message lists every problem."""


@dataclass
class LimitSet:
    path: Path | None
    profile: str = ""
    regime: str = ""
    description: str = ""
    by_name: dict[str, Limits] = field(default_factory=dict)
    bands: list[Band] = field(default_factory=list)
    scenario: str = ""  # a power file's scenario

    def get(self, name: str) -> Limits | None:
        return self.by_name.get(name)

    def band(self, ambient_c: float | None) -> Band | None:
        if ambient_c is None:
            return None
        return next((b for b in self.bands if b.holds(ambient_c)), None)

    def at(self, ambient_c: float | None) -> dict[str, Limits]:
        """The limits of a run at this ambient: the file's, with its band's in their place."""
        b = self.band(ambient_c)
        return {**self.by_name, **b.by_name} if b else dict(self.by_name)

    def refusal_allowed(self, ambient_c: float | None, refused: str) -> bool:
        """A session refused up front for this reason (a fault name) is no
        failure at this ambient."""
        b = self.band(ambient_c)
        return bool(refused) and b is not None and refused in b.refusals

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
    bands = data.pop("band", [])
    if not isinstance(bands, list):
        ck.fail("band", None, "must be an array of tables: [[band]]")
        bands = []
    for i, raw in enumerate(bands):
        b = _band(ck, raw, i)
        if b is not None:
            ls.bands.append(b)
    _no_overlap(ck, ls.bands)
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


def _band(ck: tomlfile.Checker, raw: Any, i: int) -> Band | None:
    if not isinstance(raw, dict):
        ck.fail("band", None, "must be a table", i)
        return None
    ok = True
    rng = raw.get("ambient_c")
    if (
        not isinstance(rng, list)
        or len(rng) != 2
        or not all(tomlfile.is_number(x) for x in rng)
        or not rng[0] < rng[1]
    ):
        ck.fail("band", "ambient_c", f"needs [from, to] in C, from < to; got {rng!r}", i)
        ok = False
    for key in ("reason", "measured"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            ck.fail("band", key, f"needs {key}: a band says why, and what was measured", i)
            ok = False
    refusals = raw.get("refusals", [])
    if not isinstance(refusals, list) or not all(isinstance(x, str) for x in refusals):
        ck.fail("band", "refusals", f"must be a list of fault names, got {refusals!r}", i)
        ok = False
    by_name: dict[str, Limits] = {}
    for key, table in raw.items():
        if key in _BAND:
            continue
        if key not in KPI_BY_NAME or not isinstance(table, dict):
            ck.fail("band", key, "not a band key nor a measurement's table", i)
            ok = False
            continue
        lim = _limits(ck, key, table)
        if lim is None:
            ok = False
        else:
            by_name[key] = lim
    if not ok or not isinstance(rng, list):
        return None
    lo, hi = float(rng[0]), float(rng[1])
    return Band(lo, hi, raw["reason"], raw["measured"], tuple(refusals), by_name)


def _no_overlap(ck: tomlfile.Checker, bands: list[Band]) -> None:
    ordered = sorted(bands, key=lambda b: b.lo_c)
    for a, b in itertools.pairwise(ordered):
        if b.lo_c < a.hi_c:
            ck.report(f"bands {a.describe()} and {b.describe()} overlap", "band", "ambient_c")


def _power_file(data: dict[str, Any]) -> bool:
    """A file without a scenario is judged by its first measurement."""
    first = next((n for n in data if n in _KNOWN), None)
    return first in POWER_BY_NAME


def _f(v: Any) -> float | None:
    return None if v is None else float(v)
