"""Scenarios drawn at random over the envelope the firmware accepts, as
hypothesis strategies (so that a failing one shrinks), written as scenario
files (docs/scenarios.md): what the campaign runs is what a person can run
again with `heatrig sim FILE`.

What varies: the heating profile; the unit's R0 and TCR across their spec
and its calibration record (good, missing, damaged, stale, another
controller's, another heater's); ambient 0-50 C and steps within a session;
the holder's and the charger's charge and the holder in or out of the dock;
the stick and the plug; puff patterns (regular, early -- from the first
moment of heating --, deep, rapid, weak, random; volume, duration, interval,
shape); button presses and stick in/out at random instants; every fault the
simulator injects, at a random instant; a power cut, now or a random number
of bytes into the firmware's next flash writes; timer latency.

Faults are drawn where their detection is specified (docs/safety.md): an
ADC input shorted to ground or open (at or past full scale), ambient and
cell temperatures clearly outside their limits (past the thermistors'
tolerance). Puffs start once heating has (a draw taken before the button is
not in the session), leave 1.5 s between one's end and the next's start,
and draw at least 24 mL at 12 mL/s on average (gentler draws are not puffs:
ISO 3308 with the filter vents open puts 12 mL/s through the plug).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, cast

from hypothesis import strategies as st

from hil.scenarios import scenario

PROFILES = tuple(sorted(scenario.PROFILES))
RECORDS = scenario.RECORD_KINDS
PUFF_PATTERNS = ("none", "regular", "early", "deep", "rapid", "weak", "random")
PLANT_FAULTS = ("heater_open", "heater_short", "gate_stuck_on", "adc_stuck", "timer_stop")
ENV_FAULTS = ("ambient_cold", "ambient_hot", "cell_hot", "cell_empty")
FAULTS = (*PLANT_FAULTS, *ENV_FAULTS)
# an ADC input shorted to ground, at full scale, pulled to the 3.3 V rail
ADC_RAILS_UV = (0, 3_100_000, 3_300_000)
MIN_PUFF_GAP_S = 1.5
# The gentlest draw that is a puff: ISO 3308's 35 mL over 2 s with the filter
# vents open (30 % of the air bypassing the plug) puts 12 mL/s through it.
MIN_PUFF_ML = 24.0
MIN_PUFF_ML_S = 12.0
LENGTHS = ("short", "medium", "full")
# truth every 10 ms while the heater is on or a puff is drawn, and at each
# switch of the heater; every 100 ms while nothing moves (sim/truth.py)
IDLE_SAMPLE_S = 0.1
LATE_S = 121.0  # a late start: the heater off its cool time (heater_ctl._COOL_US) and a second


@dataclass(frozen=True)
class Generated:
    """A drawn scenario: its file's text and what it was drawn to exercise."""

    toml: str
    tags: tuple[str, ...]  # "record:stale", "fault:heater_open", "puffs:early", ...
    params: dict[str, Any] = field(default_factory=dict, compare=False)


# Strategies are made once and kept: hypothesis checks a new one's structure
# on its first use, and a scenario draws a hundred values. A value between
# bounds known only while drawing is a fraction of its range.
_UNIT = st.floats(0.0, 1.0, allow_nan=False)
_BOOL = st.booleans()
_PROFILES = st.sampled_from(PROFILES)
_CHANNELS = st.sampled_from(scenario.ADC_CHANNELS)
_RAILS = st.sampled_from(ADC_RAILS_UV)


def _f(draw: st.DrawFn, lo: float, hi: float, nd: int = 3) -> float:
    """A value in [lo, hi], rounded to nd digits; shrinks towards lo."""
    return round(lo + draw(_UNIT) * (hi - lo), nd)


@functools.cache
def _int(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@functools.cache
def _weighted(*pairs: tuple[str, int]) -> st.SearchStrategy[str]:
    """A choice by weight; hypothesis shrinks towards the first."""
    return st.sampled_from([name for name, n in pairs for _ in range(n)])


def _ambient(draw: st.DrawFn) -> float:
    """0-50 C, a 10 K band first: hypothesis favours a range's ends, and the
    ends of one 0-50 range would be the two corners over and over."""
    k = draw(_int(0, 4))
    return _f(draw, 10.0 * k, 10.0 * k + 10.0, 2)


@st.composite
def _puffs(draw: st.DrawFn, heat_s: float, end_s: float) -> tuple[str, list[dict[str, Any]]]:
    pattern = draw(
        _weighted(
            ("none", 1),
            ("regular", 3),
            ("early", 3),
            ("deep", 2),
            ("rapid", 2),
            ("weak", 1),
            ("random", 3),
        )
    )
    if pattern == "none":
        return pattern, []
    first = {"early": 3.0, "rapid": 20.0}.get(pattern, 40.0)
    count = draw(_int(1, 20))
    t = heat_s + _f(draw, 0.0, first)
    puffs: list[dict[str, Any]] = []
    for _ in range(count):
        if pattern == "deep":
            vol, dur = _f(draw, 70.0, 110.0, 1), _f(draw, 1.0, 4.0, 2)
        elif pattern == "weak":
            vol, dur = _f(draw, MIN_PUFF_ML, 35.0, 1), _f(draw, 1.0, 2.5, 2)
        elif pattern == "random":
            vol, dur = _f(draw, MIN_PUFF_ML, 110.0, 1), _f(draw, 0.8, 4.0, 2)
        else:
            vol, dur = _f(draw, 30.0, 90.0, 1), _f(draw, 1.0, 3.0, 2)
        dur = min(dur, round(vol / MIN_PUFF_ML_S, 2))  # a draw gentler than a puff is not one
        if t + dur >= end_s:
            break
        shape = draw(_weighted(("bell", 3), ("square", 1)))
        puffs.append({"t_s": round(t, 3), "volume_ml": vol, "duration_s": dur, "shape": shape})
        lo, hi = {
            "rapid": (MIN_PUFF_GAP_S, 4.0),
            "early": (MIN_PUFF_GAP_S, 20.0),
            "regular": (15.0, 60.0),
            "random": (MIN_PUFF_GAP_S, 40.0),
        }.get(pattern, (3.0, 30.0))
        t += dur + _f(draw, lo, hi)
    return pattern, puffs


@st.composite
def _fault(draw: st.DrawFn, heat_s: float, end_s: float) -> tuple[str, list[dict[str, Any]]]:
    kind = draw(_weighted(("none", 4), *((k, 1) for k in FAULTS)))
    if kind == "none":
        return kind, []
    # mostly while heating: that is where a fault matters
    if draw(_weighted(("heating", 3), ("any", 1))) == "heating":
        t = _f(draw, heat_s, min(heat_s + 400.0, end_s))
    else:
        t = _f(draw, 0.0, end_s)
    t = round(min(t, end_s - 0.5), 3)
    if kind == "ambient_cold":
        return kind, [{"t_s": t, "action": "ambient", "temp_c": _f(draw, -10.0, -2.0, 1)}]
    if kind == "ambient_hot":
        return kind, [{"t_s": t, "action": "ambient", "temp_c": _f(draw, 52.0, 60.0, 1)}]
    if kind == "cell_hot":
        return kind, [{"t_s": t, "action": "cell_temp", "temp_c": _f(draw, 63.0, 75.0, 1)}]
    if kind == "cell_empty":
        return kind, [{"t_s": t, "action": "cell_soc", "soc_pct": 0.0}]
    ev: dict[str, Any] = {"t_s": t, "action": "fault", "kind": kind}
    if kind == "adc_stuck":
        ev["channel"] = draw(_CHANNELS)
        ev["uv"] = draw(_RAILS)
    out = [ev]
    if kind != "timer_stop" and draw(_BOOL):  # the fault goes away again
        out.append(
            {
                "t_s": round(min(t + _f(draw, 0.05, 60.0), end_s - 0.1), 3),
                "action": "fault",
                "kind": "clear",
            }
        )
    return kind, out


@st.composite
def generated(draw: st.DrawFn, lengths: tuple[str, ...] = LENGTHS) -> Generated:
    """One scenario of the safety campaign; `lengths` those it may have (a
    quick slice leaves out the whole sessions)."""
    tags: list[str] = []
    profile = draw(_PROFILES)
    unit: dict[str, Any] = {
        "r0_ohm": _f(draw, 0.72, 0.88, 4),
        "tcr_per_k": _f(draw, 0.0030, 0.0038, 6),
    }
    record = draw(
        _weighted(("good", 6), *((k, 1) for k in RECORDS if k != "good"), ("other_heater", 2))
    )
    unit["record"] = record
    if record not in ("good", "missing"):
        unit["record_r0_ohm"] = _f(draw, 0.72, 0.88, 4)
        unit["record_tcr_per_k"] = _f(draw, 0.0030, 0.0038, 6)
    ambient = _ambient(draw)
    # charged for a session (the gate refuses below ~95 %, more in the cold), now and then anything
    charge = draw(_weighted(("full", 5), ("any", 1)))
    holder: dict[str, Any] = {
        "soc_pct": _f(draw, 95.0, 100.0, 2) if charge == "full" else _f(draw, 0.0, 100.0, 2),
        "docked": draw(_weighted(("out", 7), ("in", 1))) == "in",
    }
    plant = {
        "c_plug_j_per_k": _f(draw, 0.225, 0.275, 4),
        "cell_capacity_mah": _f(draw, 114.0, 126.0, 2),
        "cell_r0_ohm": _f(draw, 0.06, 0.10, 4),
    }
    stick_s = _f(draw, 0.0, 1.0 if draw(_weighted(("before", 7), ("any", 1))) == "before" else 6.0)
    button_s = _f(draw, 0.5, 3.0)
    hold_s = _f(draw, 1.1, 2.5)
    heat_s = button_s + scenario.HOLD_TO_START_S
    # a whole session (and a few seconds of cooling) one time in five: most of
    # what can go wrong does so in a session's first minutes, at a fraction of the time
    weights = (("short", 9), ("medium", 7), ("full", 4))
    length = draw(_weighted(*((k, n) for k, n in weights if k in lengths)))
    lo, hi = {"short": (10.0, 60.0), "medium": (60.0, 200.0), "full": (361.0, 380.0)}[length]
    end_s = round(heat_s + _f(draw, lo, hi), 3)
    pattern, puffs = draw(_puffs(heat_s, end_s))
    events: list[dict[str, Any]] = []
    for _ in range(draw(_int(0, 2))):  # presses: a click clears a fault, a hold starts or stops
        events.append(
            {"t_s": _f(draw, 0.0, end_s - 3.0), "action": "button", "hold_s": _f(draw, 0.1, 2.5)}
        )
    if draw(_weighted(("no", 4), ("pull", 1))) == "pull":  # the stick pulled, and perhaps put back
        out_s = _f(draw, 0.0, end_s - 1.0)
        events.append({"t_s": out_s, "action": "stick", "present": False})
        if draw(_BOOL):
            events.append(
                {
                    "t_s": round(min(out_s + _f(draw, 0.1, 30.0), end_s - 0.5), 3),
                    "action": "stick",
                    "present": True,
                }
            )
        tags.append("stick_out")
    for _ in range(draw(_int(0, 2))):  # the air changes, within the envelope
        events.append(
            {"t_s": _f(draw, 0.0, end_s - 0.5), "action": "ambient", "temp_c": _ambient(draw)}
        )
        tags.append("ambient_step")
    fault, fault_events = draw(_fault(heat_s, end_s))
    events += fault_events
    if draw(_weighted(("no", 5), ("cut", 1))) == "cut":
        at = -1 if draw(_BOOL) else draw(_int(0, 400))
        ev = {"t_s": _f(draw, 0.5, max(1.0, end_s - 5.0)), "action": "power_cut"}
        if at >= 0:
            ev["at_write_byte"] = at
        events.append(ev)
        tags.append("power_cut" if at < 0 else "power_cut_mid_write")
    timer = None
    if draw(_weighted(("no", 3), ("late", 1))) == "late":
        timer = {
            "jitter_us": draw(_int(0, 2000)),
            "stall_us": draw(_int(0, 16000)),
            "every": draw(_int(1, 200)),
            "seed": draw(_int(1, 65535)),
        }
        tags.append("timer_latency")
    seed = draw(_int(1, 2**31 - 1))
    # now and then once the heater has been off its cool time (2 minutes from
    # boot): a record that reads the cold blade warm is then checked as a cold
    # start. Drawn last and applied as a shift, so the other draws stay as they were.
    late = draw(_weighted(("soon", 7), ("late", 1))) == "late"
    if late:
        stick_s, button_s, heat_s = stick_s + LATE_S, button_s + LATE_S, heat_s + LATE_S
        end_s = round(end_s + LATE_S, 3)
        for ev in events + puffs:
            ev["t_s"] = round(cast(float, ev["t_s"]) + LATE_S, 3)
    tags += [
        f"start:{'late' if late else 'soon'}",
        f"profile:{profile}",
        f"record:{record}",
        f"puffs:{pattern}",
        f"fault:{fault}",
        f"length:{length}",
    ]
    if any(p["volume_ml"] >= 70.0 for p in puffs):
        tags.append("puffs:70ml_and_up")
    if any(p["t_s"] < heat_s + 20.0 for p in puffs):
        tags.append("puffs:in_preheat")
    data: dict[str, Any] = {
        "scenario": {
            "name": "safety",
            "profile": profile,
            "duration_s": end_s,
            "seed": seed,
        },
        "ambient": {"temp_c": ambient},
        "unit": unit,
        "holder": holder,
        "charger": {"soc_pct": _f(draw, 0.0, 100.0, 2)},
        "start": {"stick_at_s": stick_s, "button_at_s": button_s, "hold_s": hold_s},
        "record": {"telemetry": False, "idle_sample_s": IDLE_SAMPLE_S},
        "plant": plant,
        "puffing": {"regime": "custom", "puffs": puffs} if puffs else {"regime": "none"},
        "events": sorted(events, key=lambda e: float(e["t_s"])),
    }
    if timer is not None:
        data["timer"] = timer
    params = {
        "profile": profile,
        "ambient_c": ambient,
        "record": record,
        "fault": fault,
        "puffs": pattern,
        "length": length,
    }
    return Generated(to_toml(data), tuple(tags), params)


# --- writing scenario files ------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"no TOML for {v!r}")


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """A scenario's tables as TOML text (scalars, tables, arrays of tables)."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    for name, table in data.items():
        if isinstance(table, list):
            for item in table:
                lines += ["", f"[[{name}]]"] + [f"{k} = {_value(v)}" for k, v in item.items()]
            continue
        lines += ["", f"[{name}]"]
        for k, v in table.items():
            if not isinstance(v, list):
                lines.append(f"{k} = {_value(v)}")
        for k, v in table.items():
            if isinstance(v, list):
                for item in v:
                    lines += ["", f"[[{name}.{k}]]"] + [
                        f"{kk} = {_value(vv)}" for kk, vv in item.items()
                    ]
    return "\n".join(lines).lstrip("\n") + "\n"
