"""Scenario files: load a TOML scenario, validate all of it before anything
runs, and expand it into the event list the simulator executes.

Every error names the file and line ("scenarios/x.toml:12: [puffing]
interval_s: must be > 0, got -3"), and all errors are reported at once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil import tomlfile
from hil.scenarios.regimes import REGIMES, Regime
from hil.wire import contract

PROFILES = contract.firmware("profiles").keys("PROFILES")
# what sim/inject.py's fault() takes (tests/wire/test_host_copies.py compares them)
FAULT_KINDS = ("heater_open", "heater_short", "gate_stuck_on", "adc_stuck", "clear")
ADC_CHANNELS = contract.sim("inject").keys("ADC_NAMES")
SESSION_S = 360.0
COOLING_S = 30.0
HOLD_TO_START_S = contract.firmware("device").integer("HOLD_START_MS") / 1000


class ScenarioError(tomlfile.TomlFileError):
    """The scenario is invalid; str() lists every problem, one per line."""


@dataclass(frozen=True)
class Puff:
    t_s: float
    volume_ml: float
    duration_s: float
    bell: bool = True


@dataclass(frozen=True)
class Event:
    t_s: float
    action: str  # _EVENT_NEEDS: button | stick | fault | ambient | cell_temp | cell_soc | usb | ...
    arg: Any


@dataclass(frozen=True)
class SessionSeries:
    """Sessions repeated every `every_s` from `first_s`: the holder taken out
    of the charger (if `dock`), a stick in, the button held, the regime's
    puffs, the stick out after cooling, the holder back in the charger."""

    count: int
    every_s: float
    first_s: float
    events: tuple[tuple[float, str, Any], ...]  # one session, from its start


@dataclass
class Scenario:
    name: str
    path: Path | None
    description: str = ""
    seed: int = 1
    profile: str = "standard"
    duration_s: float = 0.0
    ambient_c: float = 20.0
    soc_pct: float = 100.0
    r0_ohm: float = 0.80
    tcr_per_k: float = 0.0035
    calibrated: bool = True
    regime: str = "hci"
    puffs: list[Puff] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    plant: dict[str, float] = field(default_factory=dict)
    heating_start_s: float = 0.0  # when the button hold completes (expected)
    charger_soc_pct: float = 100.0
    holder_docked: bool = False
    usb_plugged: bool = False
    usb_i_limit_a: float | None = None
    sample_s: float = 0.01  # truth samples
    telemetry: bool = True  # the firmware's per-step telemetry
    series: SessionSeries | None = None
    starts_session: bool = True  # [start] session: false -- nobody starts one (charging, say)

    def run_config(self) -> dict[str, Any]:
        """The JSON the simulator (sim/run.py) reads."""
        plant = dict(self.plant)
        plant.update(
            ambient_c=self.ambient_c,
            cell_soc=self.soc_pct / 100.0,
            r0_ohm=self.r0_ohm,
            tcr_per_k=self.tcr_per_k,
        )
        plant.update(
            chg_cell_soc=self.charger_soc_pct / 100.0,
            docked=1.0 if self.holder_docked else 0.0,
            usb_plugged=1.0 if self.usb_plugged else 0.0,
        )
        if self.usb_i_limit_a is not None:
            plant["usb_i_limit_a"] = self.usb_i_limit_a
        if self.regime in REGIMES and "vent_bypass" not in self.plant:
            plant["vent_bypass"] = REGIMES[self.regime].vent_bypass
        events: list[tuple[float, str, Any]] = [(e.t_s, e.action, e.arg) for e in self.events]
        events += [(p.t_s, "puff", [p.volume_ml, p.duration_s, p.bell]) for p in self.puffs]
        events.sort(key=lambda e: e[0])  # stable: same-time events keep file order
        cfg: dict[str, Any] = {
            "seed": self.seed,
            "end_s": self.duration_s,
            "plant": plant,
            "events": [[round(t * 1e6), kind, arg] for t, kind, arg in events],
            "sample_us": round(self.sample_s * 1e6),
            "power_sample_us": max(1_000_000, round(self.sample_s * 1e6)),
        }
        if self.series is not None:
            sr = self.series
            cfg["cycle"] = {
                "start_us": round(sr.first_s * 1e6),
                "period_us": round(sr.every_s * 1e6),
                "count": sr.count,
                "events": [[round(t * 1e6), kind, arg] for t, kind, arg in sr.events],
            }
        return cfg

    def calibration_record(self) -> dict[str, int] | None:
        """The unit's calibration record as end-of-line test would store it."""
        if not self.calibrated:
            return None
        return {"r0_uohm": round(self.r0_ohm * 1e6), "tcr_ppm": round(self.tcr_per_k * 1e6)}


class _Checker(tomlfile.Checker):
    """The shared checker, plus the scenario's own schema: each key's kind
    (float, int, str, bool, list, dict, or a tuple of allowed strings) and,
    if it has one, its default."""

    def table(
        self, data: dict[str, Any], table: str, allowed: dict[str, Any], index: int = 0
    ) -> dict[str, Any]:
        """Check keys and types of one table; return the values, defaults filled in."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not self.known(table, key, allowed, index):
                continue
            spec = allowed[key]
            kind = spec[0] if isinstance(spec, tuple) else spec
            if not _is(value, kind):
                self.fail(table, key, f"must be {_kind_name(kind)}, got {value!r}", index)
                continue
            out[key] = float(value) if kind is float else value
        for key, spec in allowed.items():
            if key not in out and isinstance(spec, tuple) and len(spec) > 1:
                out[key] = spec[1]
        return out

    def range(
        self, vals: dict[str, Any], table: str, key: str, lo: float, hi: float, index: int = 0
    ) -> None:
        v = vals.get(key)
        if v is not None and not lo <= v <= hi:
            self.fail(table, key, f"must be within {lo:g}..{hi:g}, got {v!r}", index)


def _is(value: Any, kind: Any) -> bool:
    if kind is float:
        return tomlfile.is_number(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, tuple):  # a choice of strings
        return value in kind
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(repr(k) for k in kind)
    return {
        float: "a number",
        int: "an integer",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(kind, str(kind))


_TOP = {
    "scenario": dict,
    "ambient": dict,
    "holder": dict,
    "charger": dict,
    "usb": dict,
    "unit": dict,
    "start": dict,
    "sessions": dict,
    "puffing": dict,
    "events": list,
    "record": dict,
    "plant": dict,
}
_SCENARIO = {
    "name": (str,),
    "description": (str, ""),
    "seed": (int, 1),
    "profile": (PROFILES, "standard"),
    "duration_s": (float,),
}
_AMBIENT = {"temp_c": (float, 20.0)}
_HOLDER = {"soc_pct": (float, 100.0), "docked": (bool, False)}
_CHARGER = {"soc_pct": (float, 100.0)}
_USB = {"plugged": (bool, False), "i_limit_a": (float,)}
_SESSIONS = {
    "count": (int,),
    "every_s": (float, 720.0),
    "first_s": (float, 5.0),
    "dock": (bool, True),
}
_RECORD = {"sample_s": (float, 0.01), "telemetry": (bool, True)}
_UNIT = {"r0_ohm": (float, 0.80), "tcr_per_k": (float, 0.0035), "calibrated": (bool, True)}
_START = {
    "session": (bool, True),  # false: nobody starts one (a charging scenario)
    "stick_at_s": (float, 0.0),
    "button_at_s": (float, 1.0),
    "hold_s": (float, 1.5),
}
_PUFFING = {
    "regime": ((*REGIMES, "custom", "none"), "hci"),
    "first_s": (float,),
    "count": (int,),
    "interval_s": (float,),
    "volume_ml": (float,),
    "duration_s": (float,),
    "shape": (("bell", "square"),),
    "puffs": (list,),
}
_PUFF = {
    "t_s": (float,),
    "volume_ml": (float,),
    "duration_s": (float,),
    "shape": (("bell", "square"),),
}
_EVENT_NEEDS = {
    "button": ("hold_s",),
    "stick": ("present",),
    "fault": ("kind",),
    "ambient": ("temp_c",),
    "cell_temp": ("temp_c",),
    "cell_soc": ("soc_pct",),
    "usb": ("plugged",),
    "dock": ("docked",),
    "charger_button": ("hold_s",),
    "charger_temp": ("temp_c",),
    "charger_soc": ("soc_pct",),
    "power_cut": (),
}
_EVENT = {
    "t_s": (float,),
    "action": (tuple(_EVENT_NEEDS),),
    "hold_s": (float,),
    "present": (bool,),
    "kind": (FAULT_KINDS,),
    "channel": (ADC_CHANNELS,),
    "uv": (int,),
    "temp_c": (float,),
    "soc_pct": (float,),
    "plugged": (bool,),
    "i_limit_a": (float,),
    "docked": (bool,),
    "at_write_byte": (int,),
}
SESSION_SPAN_S = 1.0 + HOLD_TO_START_S + SESSION_S + COOLING_S + 5.0  # undock .. dock


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError listing every problem."""
    p = Path(path)
    return parse(tomlfile.read(p, ScenarioError), p, overrides)


def parse(text: str, path: Path | None = None, overrides: dict[str, Any] | None = None) -> Scenario:
    where = str(path) if path else "<scenario>"
    data = tomlfile.loads(text, where, ScenarioError)
    for key, value in (overrides or {}).items():
        table, _, name = key.rpartition(".")
        data.setdefault(table, {})[name] = value
    ck = _Checker(text, where)
    top = ck.table(data, "", _TOP)
    sc = _build(ck, top, path)
    ck.raise_problems(ScenarioError)
    return sc


def _build(ck: _Checker, top: dict[str, Any], path: Path | None) -> Scenario:
    s = ck.table(top.get("scenario", {}), "scenario", _SCENARIO)
    if "name" not in s:
        ck.fail("scenario", None, "needs a name")
    amb = ck.table(top.get("ambient", {}), "ambient", _AMBIENT)
    ck.range(amb, "ambient", "temp_c", -40, 85)
    hold = ck.table(top.get("holder", {}), "holder", _HOLDER)
    ck.range(hold, "holder", "soc_pct", 0, 100)
    chg = ck.table(top.get("charger", {}), "charger", _CHARGER)
    ck.range(chg, "charger", "soc_pct", 0, 100)
    usb = ck.table(top.get("usb", {}), "usb", _USB)
    ck.range(usb, "usb", "i_limit_a", 0.05, 5.0)
    rec = ck.table(top.get("record", {}), "record", _RECORD)
    ck.range(rec, "record", "sample_s", 0.001, 10.0)
    unit = ck.table(top.get("unit", {}), "unit", _UNIT)
    ck.range(unit, "unit", "r0_ohm", 0.3, 2.0)
    ck.range(unit, "unit", "tcr_per_k", 0.0020, 0.0050)
    start = ck.table(top.get("start", {}), "start", _START)
    for k in ("stick_at_s", "button_at_s", "hold_s"):
        ck.range(start, "start", k, 0, 3600)

    sc = Scenario(
        name=s.get("name", "unnamed"),
        path=path,
        description=s.get("description", ""),
        seed=s.get("seed", 1),
        profile=s.get("profile", "standard"),
        ambient_c=amb.get("temp_c", 20.0),
        soc_pct=hold.get("soc_pct", 100.0),
        r0_ohm=unit.get("r0_ohm", 0.80),
        tcr_per_k=unit.get("tcr_per_k", 0.0035),
        calibrated=unit.get("calibrated", True),
        charger_soc_pct=chg.get("soc_pct", 100.0),
        holder_docked=hold.get("docked", False),
        usb_plugged=usb.get("plugged", False),
        usb_i_limit_a=usb.get("i_limit_a"),
        sample_s=rec.get("sample_s", 0.01),
        telemetry=rec.get("telemetry", True),
    )
    if not 0 <= sc.seed < 2**31:
        ck.fail("scenario", "seed", f"must be within 0..2147483647, got {sc.seed}")
    if "sessions" in top:
        if "start" in top:
            ck.fail("start", None, "[start] is for one session; [sessions] times its own")
        sc.series = _series(ck, top["sessions"], top.get("puffing", {}))
        sc.regime = (
            top.get("puffing", {}).get("regime", "hci")
            if isinstance(top.get("puffing"), dict)
            else "none"
        )
    elif start.get("session", True):
        stick_at = start.get("stick_at_s", 0.0)
        press_at = start.get("button_at_s", 1.0)
        hold_s = start.get("hold_s", 1.5)
        sc.events.append(Event(stick_at, "stick", True))
        sc.events += [Event(press_at, "button", True), Event(press_at + hold_s, "button", False)]
        sc.heating_start_s = press_at + HOLD_TO_START_S
        sc.regime, sc.puffs = _puffs(ck, top.get("puffing", {}), sc.heating_start_s)
    else:  # no session: no puffing regime to judge it by
        sc.regime = "none"
        sc.starts_session = False
    for i, ev in enumerate(top.get("events", [])):
        sc.events += _event(ck, ev, i)
    sc.plant = _plant(ck, top.get("plant", {}))

    explicit = sc.puffs if sc.regime == "custom" else []
    last = max([e.t_s for e in sc.events] + [p.t_s + p.duration_s for p in explicit] + [0.0])
    session_end = sc.heating_start_s + SESSION_S + COOLING_S + 5.0
    if sc.series is not None:
        session_end = sc.series.first_s + sc.series.count * sc.series.every_s
    default_end = max([session_end, last + 1.0] + [p.t_s + p.duration_s + 1.0 for p in sc.puffs])
    sc.duration_s = s.get("duration_s", default_end)
    if not 0 < sc.duration_s <= 24 * 3600:
        ck.fail("scenario", "duration_s", f"must be within 0..86400 s, got {sc.duration_s}")
    elif last > sc.duration_s:
        ck.fail(
            "scenario",
            "duration_s",
            f"ends at {sc.duration_s:g} s, before the last event at {last:g} s",
        )
    # a regime's puffs simply stop when the run does
    sc.puffs = [p for p in sc.puffs if p.t_s < sc.duration_s]
    return sc


def _puffs(ck: _Checker, raw: Any, heating_start_s: float) -> tuple[str, list[Puff]]:
    if not isinstance(raw, dict):
        ck.fail("puffing", None, "must be a table")
        return "none", []
    pf = ck.table(raw, "puffing", _PUFFING)
    regime = pf.get("regime", "hci")
    for k in ("first_s", "interval_s", "volume_ml", "duration_s"):
        if k in pf and pf[k] <= 0:
            ck.fail("puffing", k, f"must be > 0, got {pf[k]!r}")
    ck.range(pf, "puffing", "count", 0, 1000)
    if regime == "none":
        return regime, []
    bell_default = pf.get("shape", "bell") == "bell"
    if regime == "custom":
        puffs = []
        listed = pf.get("puffs", [])
        if not listed:
            ck.fail("puffing", "puffs", "a custom regime needs a list of puffs")
        for i, item in enumerate(listed):
            if not isinstance(item, dict):
                ck.fail("puffing.puffs", None, "must be a table", i)
                continue
            d = ck.table(item, "puffing.puffs", _PUFF, i)
            for k in ("t_s", "volume_ml", "duration_s"):
                if k not in d:
                    ck.fail("puffing.puffs", None, f"needs {k}", i)
                elif d[k] < 0 or (k != "t_s" and d[k] == 0):
                    ck.fail("puffing.puffs", k, f"must be > 0, got {d[k]!r}", i)
            if all(k in d for k in ("t_s", "volume_ml", "duration_s")):
                bell = d.get("shape", "bell" if bell_default else "square") == "bell"
                puffs.append(Puff(d["t_s"], d["volume_ml"], d["duration_s"], bell))
        _check_overlap(ck, puffs)
        return regime, puffs
    if "puffs" in pf:
        ck.fail("puffing", "puffs", f"explicit puffs need regime = 'custom', not {regime!r}")
    rg: Regime = REGIMES[regime]
    interval = pf.get("interval_s", rg.interval_s)
    volume = pf.get("volume_ml", rg.volume_ml)
    duration = pf.get("duration_s", rg.duration_s)
    first = pf.get("first_s", heating_start_s + rg.first_after_start_s)
    if min(interval, volume, duration) <= 0:
        return regime, []  # reported above
    if duration >= interval:
        ck.fail(
            "puffing", "duration_s", f"a {duration:g} s puff does not fit a {interval:g} s interval"
        )
        return regime, []
    session_end = heating_start_s + SESSION_S
    if "count" in pf:
        n = pf["count"]
    else:  # as many as start before the session's time limit
        n = max(0, math.floor((session_end - duration - first) / interval) + 1)
    return regime, [Puff(first + k * interval, volume, duration, bell_default) for k in range(n)]


def _series(ck: _Checker, raw: Any, puffing: Any) -> SessionSeries | None:
    if not isinstance(raw, dict):
        ck.fail("sessions", None, "must be a table")
        return None
    d = ck.table(raw, "sessions", _SESSIONS)
    if "count" not in d:
        ck.fail("sessions", None, "needs count")
        return None
    ck.range(d, "sessions", "count", 1, 500)
    ck.range(d, "sessions", "first_s", 0, 86400)
    every, first, dock = d["every_s"], d["first_s"], d["dock"]
    if every < SESSION_SPAN_S:
        ck.fail("sessions", "every_s", f"a session takes {SESSION_SPAN_S:g} s, got {every:g}")
    # one session, from its start: out of the dock, stick in, button held, puffs, stick out, back in
    heat_s = 1.0 + HOLD_TO_START_S
    ev: list[tuple[float, str, Any]] = []
    if dock:
        ev.append((0.0, "dock", False))
    ev += [(0.5, "stick", True), (1.0, "button", True), (2.5, "button", False)]
    _, puffs = _puffs(ck, puffing, heat_s)
    ev += [(p.t_s, "puff", [p.volume_ml, p.duration_s, p.bell]) for p in puffs]
    end = heat_s + SESSION_S + COOLING_S + 2.0
    ev.append((end, "stick", False))
    if dock:
        ev.append((end + 1.0, "dock", True))
    ev.sort(key=lambda e: e[0])
    return SessionSeries(d["count"], every, first, tuple(ev))


def _check_overlap(ck: _Checker, puffs: list[Puff]) -> None:
    ordered = sorted(enumerate(puffs), key=lambda x: x[1].t_s)
    for (_, a), (j, b) in itertools.pairwise(ordered):
        if b.t_s < a.t_s + a.duration_s:
            ck.fail(
                "puffing.puffs", "t_s", f"starts at {b.t_s:g} s, inside the puff at {a.t_s:g} s", j
            )


def _event(ck: _Checker, raw: Any, i: int) -> list[Event]:
    if not isinstance(raw, dict):
        ck.fail("events", None, "must be a table", i)
        return []
    d = ck.table(raw, "events", _EVENT, i)
    if "t_s" not in d or "action" not in d:
        ck.fail("events", None, "needs t_s and action", i)
        return []
    t, action = d["t_s"], d["action"]
    if t < 0:
        ck.fail("events", "t_s", f"must be >= 0, got {t!r}", i)
    needs = _EVENT_NEEDS[action]
    missing = [k for k in needs if k not in raw]
    if missing:
        ck.fail("events", "action", f"{action!r} needs {', '.join(missing)}", i)
    if missing or any(k not in d for k in needs):  # missing, or already reported as wrong
        return []
    if action == "button":
        if d["hold_s"] <= 0:
            ck.fail("events", "hold_s", f"must be > 0, got {d['hold_s']!r}", i)
        return [Event(t, "button", True), Event(t + d["hold_s"], "button", False)]
    if action == "stick":
        return [Event(t, "stick", d["present"])]
    if action in ("ambient", "cell_temp", "charger_temp"):
        ck.range(d, "events", "temp_c", -40, 120, i)
        return [Event(t, action, d["temp_c"])]
    if action in ("cell_soc", "charger_soc"):
        ck.range(d, "events", "soc_pct", 0, 100, i)
        return [Event(t, action, d["soc_pct"] / 100.0)]
    if action == "usb":
        ck.range(d, "events", "i_limit_a", 0.05, 5.0, i)
        return [Event(t, "usb", [d["plugged"], d.get("i_limit_a", 0.0)])]
    if action == "dock":
        return [Event(t, "dock", d["docked"])]
    if action == "charger_button":
        if d["hold_s"] <= 0:
            ck.fail("events", "hold_s", f"must be > 0, got {d['hold_s']!r}", i)
        return [Event(t, action, True), Event(t + d["hold_s"], action, False)]
    if action == "power_cut":
        ck.range(d, "events", "at_write_byte", 0, 1 << 20, i)
        return [Event(t, action, d.get("at_write_byte", -1))]
    kind = d["kind"]
    if kind == "adc_stuck":
        if "channel" not in d or "uv" not in d:
            ck.fail("events", "kind", "'adc_stuck' needs channel and uv", i)
            return []
        ck.range(d, "events", "uv", 0, 3300000, i)
        return [Event(t, "fault", [kind, [d["channel"], d["uv"]]])]
    return [Event(t, "fault", [kind, None])]


def _plant(ck: _Checker, raw: Any) -> dict[str, float]:
    from hil.scenarios.plant_params import PLANT_PARAMS

    if not isinstance(raw, dict):
        ck.fail("plant", None, "must be a table")
        return {}
    allowed = {k: (float,) for k in PLANT_PARAMS}
    out = ck.table(raw, "plant", allowed)
    for k, v in out.items():
        if v < 0:
            ck.fail("plant", k, f"must be >= 0, got {v!r}")
    return out
