"""The safety invariants, checked on the simulator's truth at every sample
(every 10 ms) of a run -- what the plant did, not what the firmware says it
did -- and on what the device kept across power cuts.

Each check returns whether the run exercised the invariant (a fault while
heating, a session that reached 14 puffs, a reboot...) and every violation
it found, as text a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.scenarios.scenario import Scenario
from hil.simulator import runner
from hil.wire import contract, events, series

CONTROL_PERIOD_S = contract.firmware("heater_ctl").integer("CONTROL_PERIOD_MS") / 1000
MAIN_PERIOD_S = contract.firmware("app").integer("MAIN_PERIOD_MS") / 1000
SESSION_S = contract.firmware("heater_ctl").integer("SESSION_MS") / 1000
SESSION_PUFFS = contract.firmware("heater_ctl").integer("SESSION_PUFFS")
# an empty cell is only found under load: its onset is the cell below this
CELL_MIN_UV = contract.firmware("heater_safety").integer("_CELL_MIN_MV") * 1000
CAP_C = 350.0
SAMPLE_S = 0.010  # the truth's sample period: every bound below is measured to it
# a fault's cut: two control periods, measured on samples 10 ms apart
CUT_S = 2 * CONTROL_PERIOD_S + SAMPLE_S
# a control step that stopped is found by the main loop: two of its periods
CUT_STALLED_S = 2 * MAIN_PERIOD_S + SAMPLE_S
PUFF_END_GRACE_S = 1.0  # the 14th puff's end, as the firmware's detector confirms it
PUFF_EDGE_S = 0.5  # a puff begun this close to a session's end may or may not count


@dataclass(frozen=True)
class Invariant:
    name: str
    statement: str


INVARIANTS = (
    Invariant("blade_cap", "the true blade never exceeds 350 C"),
    Invariant(
        "fault_cut",
        "the heater is off within 2 control periods of a fault's physical onset (a stopped "
        "control step: 2 main-loop periods); no heating without a stick",
    ),
    Invariant("session_time", "no session longer than 6:00 plus one control period"),
    Invariant("puff_limit", "no heating past the end of a session's 14th puff taken"),
    Invariant(
        "puff_count",
        "a session's puff count, as it ends, is the puffs taken in it (0 missed, 0 phantom)",
    ),
    Invariant("nothing_stuck", "the run completes: no watchdog reset, no crash"),
    Invariant(
        "kept_over_power_cut",
        "counters and settings survive a power cut (at most the write it cut is lost)",
    ),
)
NAMES = tuple(i.name for i in INVARIANTS)


@dataclass
class Verdict:
    exercised: set[str] = field(default_factory=set)
    violations: dict[str, list[str]] = field(default_factory=dict)
    observed: set[str] = field(default_factory=set)  # tags only a run shows ("fault_while_heating")
    puffs: dict[str, int] = field(default_factory=lambda: {"taken": 0, "missed": 0, "phantom": 0})

    def fail(self, name: str, why: str) -> None:
        self.violations.setdefault(name, []).append(why)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Condition:
    """A fault's physical condition on [start_s, end_s): the heater must be off
    within bound_s of it, or of a heater-on interval's start within it."""

    kind: str
    start_s: float
    end_s: float
    bound_s: float
    while_on: bool = False  # only a heater-on interval under way at start_s is bound by it


def check(sc: Scenario, res: runner.RunResult | None, error: str = "") -> Verdict:
    """Every invariant on one run (res None: the simulation did not complete)."""
    v = Verdict()
    v.exercised.add("nothing_stuck")
    if res is None:
        v.fail("nothing_stuck", error or "the run did not complete")
        return v
    tr = res.truth
    t = tr["t_us"] / 1e6
    en = (tr["io"] & series.IO_HEATER_EN) > 0
    runs = on_runs(t, en)
    _blade(v, tr, runs)
    latency_s = sc.timer_latency[1] / 1e6 if sc.timer_latency else 0.0
    _faults(v, sc, tr, runs, latency_s)
    _session_time(v, runs, latency_s)
    _puffs(v, sc, res, t, runs)
    _power_cuts(v, sc, res)
    return v


def on_runs(t: np.ndarray, en: np.ndarray) -> list[tuple[float, float]]:
    """Intervals the load switch was on: first sample on to first sample off."""
    if not len(t):
        return []
    edges = np.flatnonzero(np.diff(en.astype(np.int8))) + 1
    out = []
    start = t[0] if en[0] else None
    for i in edges:
        if en[i]:
            start = t[i]
        elif start is not None:
            out.append((float(start), float(t[i])))
            start = None
    if start is not None:
        out.append((float(start), float(t[-1]) + SAMPLE_S))
    return out


def _blade(v: Verdict, tr: np.ndarray, runs: list[tuple[float, float]]) -> None:
    if runs:
        v.exercised.add("blade_cap")
    peak = float(tr["blade_uc"].max()) / 1e6 if len(tr) else 0.0
    if peak > CAP_C:
        i = int(np.argmax(tr["blade_uc"]))
        v.fail("blade_cap", f"the true blade reached {peak:.1f} C at {tr['t_us'][i] / 1e6:.2f} s")


def conditions(sc: Scenario) -> list[Condition]:
    """The fault conditions the scenario imposes, from its events."""
    out: list[Condition] = []
    end = sc.duration_s
    evs = sorted(sc.events, key=lambda e: e.t_s)

    def until(i: int, stop: Callable[[Any], bool]) -> float:
        return next((e.t_s for e in evs[i + 1 :] if stop(e)), end)

    for i, e in enumerate(evs):
        if e.action == "fault":
            kind = e.arg[0]
            if kind == "timer_stop":  # a start restarts the step's timer: only a session under way
                out.append(Condition(kind, e.t_s, e.t_s + CUT_STALLED_S, CUT_STALLED_S, True))
            elif kind in ("heater_open", "heater_short", "adc_stuck"):
                stop = until(i, lambda x: x.action == "fault" and x.arg[0] == "clear")
                out.append(Condition(kind, e.t_s, stop, CUT_S))
        elif e.action == "stick" and not e.arg:
            out.append(
                Condition(
                    "stick_out", e.t_s, until(i, lambda x: x.action == "stick" and x.arg), CUT_S
                )
            )
        elif e.action == "ambient" and not -1.0 <= e.arg <= 51.0:
            stop = until(i, lambda x: x.action == "ambient" and -1.0 <= x.arg <= 51.0)
            out.append(
                Condition("ambient_cold" if e.arg < 0 else "ambient_hot", e.t_s, stop, CUT_S)
            )
        elif (
            e.action == "cell_temp" and e.arg >= 62.0
        ):  # the cell then cools with a ~100 s time constant
            out.append(Condition("cell_hot", e.t_s, e.t_s + 1.0, CUT_S))
        elif e.action == "cell_soc" and e.arg == 0.0:
            out.append(Condition("cell_empty", e.t_s, end, CUT_S))
    # no stick from the start until it is put in
    first_in = next((e.t_s for e in evs if e.action == "stick" and e.arg), end)
    if first_in > 0:
        out.append(Condition("no_stick", 0.0, first_in, CUT_S))
    return out


def _faults(
    v: Verdict, sc: Scenario, tr: np.ndarray, runs: list[tuple[float, float]], latency_s: float
) -> None:
    t = tr["t_us"] / 1e6
    for c in conditions(sc):
        for s, e in runs:
            if e <= c.start_s or s >= c.end_s or (c.while_on and s > c.start_s):
                continue
            onset = max(s, c.start_s)
            if c.kind == "cell_empty":  # physically: the cell under load below the limit
                low = np.flatnonzero((t >= onset) & (t < e) & (tr["cell_uv"] < CELL_MIN_UV))
                if not len(low):
                    continue
                onset = float(t[low[0]])
            v.exercised.add("fault_cut")
            v.observed.add(f"onset_while_heating:{c.kind}")
            bound = c.bound_s + latency_s
            if e - onset > bound + 1e-6:
                v.fail(
                    "fault_cut",
                    f"{c.kind} at {c.start_s:.3f} s: the heater was on until {e:.3f} s, "
                    f"{1000 * (e - onset):.0f} ms after its onset at {onset:.3f} s "
                    f"(bound {1000 * bound:.0f} ms)",
                )


def _session_time(v: Verdict, runs: list[tuple[float, float]], latency_s: float) -> None:
    bound = SESSION_S + CONTROL_PERIOD_S + SAMPLE_S + latency_s
    for s, e in runs:
        if e - s >= SESSION_S - 1.0:
            v.exercised.add("session_time")
        if e - s > bound + 1e-6:
            v.fail(
                "session_time",
                f"the heater was on {e - s:.3f} s from {s:.3f} s (bound {bound:.3f} s)",
            )


def _truth_puffs(sc: Scenario) -> list[tuple[float, float]]:
    return sorted((p.t_s, p.t_s + p.duration_s) for p in sc.puffs)


def _puffs(
    v: Verdict, sc: Scenario, res: runner.RunResult, t: np.ndarray, runs: list[tuple[float, float]]
) -> None:
    puffs = _truth_puffs(sc)
    for s, e in runs:
        taken = [p for p in puffs if s <= p[0] < e]
        if len(taken) >= SESSION_PUFFS:
            v.exercised.add("puff_limit")
            end14 = taken[SESSION_PUFFS - 1][1]
            if e > end14 + PUFF_END_GRACE_S + 1e-6:
                v.fail(
                    "puff_limit",
                    f"the session from {s:.2f} s heated until {e:.2f} s, past its 14th puff's "
                    f"end at {end14:.2f} s ({len(taken)} puffs began while it heated)",
                )
    # the counts the firmware reported, session by session and boot by boot
    faulted = _fault_windows(sc)
    cuts = [_reboot_t(r) for r in res.reboots]
    reported = _session_counts(res.console)
    bounds = [0.0, *cuts, float("inf")]
    for k in range(len(bounds) - 1):
        boot_runs = [(s, e) for s, e in runs if bounds[k] <= s < bounds[k + 1]]
        counts = reported[k] if k < len(reported) else []
        if len(boot_runs) != len(counts):
            continue  # a session shorter than a sample: not matched
        for (s, e), n in zip(boot_runs, counts, strict=True):
            if any(a < e and s < b for a, b in faulted):
                continue  # a fault in the session: the heater's cut is what counts, not its puffs
            sure = [p for p in puffs if s <= p[0] <= e - PUFF_EDGE_S]
            maybe = [p for p in puffs if e - PUFF_EDGE_S < p[0] < e or p[0] < s < p[1]]
            v.exercised.add("puff_count")
            v.puffs["taken"] += len(sure)
            if n < len(sure):
                v.puffs["missed"] += len(sure) - n
                v.fail(
                    "puff_count",
                    f"the session from {s:.2f} s counted {n} puffs, {len(sure)} were taken",
                )
            elif n > len(sure) + len(maybe):
                v.puffs["phantom"] += n - len(sure) - len(maybe)
                v.fail(
                    "puff_count",
                    f"the session from {s:.2f} s counted {n} puffs, {len(sure)} were taken "
                    f"(and {len(maybe)} at its edges)",
                )


def _fault_windows(sc: Scenario) -> list[tuple[float, float]]:
    """When a fault was imposed: its conditions, and a stuck gate until cleared."""
    out = [(c.start_s, c.end_s) for c in conditions(sc) if c.kind != "no_stick"]
    evs = sorted(sc.events, key=lambda e: e.t_s)
    for i, e in enumerate(evs):
        if e.action == "fault" and e.arg[0] == "gate_stuck_on":
            clear = next(
                (x.t_s for x in evs[i + 1 :] if x.action == "fault" and x.arg[0] == "clear"), None
            )
            out.append((e.t_s, clear if clear is not None else sc.duration_s))
    return out


def _reboot_t(line: str) -> float:
    m = re.search(r"t_us=(\d+)", line)
    return int(m.group(1)) / 1e6 if m else 0.0


def _cut_by_power(end_s: float, cuts: list[float]) -> bool:
    return any(abs(end_s - c) <= 2 * SAMPLE_S for c in cuts)


def _session_counts(console: list[str]) -> list[list[int]]:
    """Per boot, every session's puff count: the last it reported, as it
    ended or when the run (or the power) did."""
    out: list[list[int]] = []
    for line in console:
        if line.startswith(events.BOOT):
            out.append([])
        elif line == events.state("preheat") and out:
            out[-1].append(0)
        elif out and out[-1] and line.startswith((events.PUFF + " ", events.SESSION)):
            out[-1][-1] = int(line.rsplit(" ", 1)[-1].split("=")[-1])
    return out


_BOOT_WORDS = re.compile(r"(\w+)=(\S+)")


def boots(console: list[str]) -> list[dict[str, Any]]:
    """Each boot line's words, and the session counts that followed it."""
    out: list[dict[str, Any]] = []
    for line in console:
        if line.startswith(events.BOOT):
            out.append({**dict(_BOOT_WORDS.findall(line)), "ended": []})
        elif line.startswith(events.SESSION) and out:
            out[-1]["ended"].append(int(line[len(events.SESSION) :].split()[0]))
    return out


def _power_cuts(v: Verdict, sc: Scenario, res: runner.RunResult) -> None:
    bs = boots(res.console)
    if len(bs) < 2:
        return
    v.exercised.add("kept_over_power_cut")
    mid_write = any(e.action == "power_cut" and e.arg >= 0 for e in sc.events)
    for k in range(len(bs) - 1):
        a, b = bs[k], bs[k + 1]
        for key in ("profile", "calibrated", "r0_uohm", "tcr_ppm"):
            if a.get(key) != b.get(key):
                v.fail(
                    "kept_over_power_cut",
                    f"boot {k + 2}: {key}={b.get(key)}, before the cut {a.get(key)}",
                )
        ended = a["ended"]
        full = (int(a["boots"]) + 1, int(a["sessions"]) + len(ended), int(a["puffs"]) + sum(ended))
        allowed = {full}
        if mid_write:  # the write the cut fell in: its record is the previous one
            allowed.add(
                (full[0] - 1, full[1], full[2])
                if not ended
                else (full[0], full[1] - 1, full[2] - ended[-1])
            )
        got = (int(b["boots"]), int(b["sessions"]), int(b["puffs"]))
        if got not in allowed:
            v.fail(
                "kept_over_power_cut",
                f"boot {k + 2}: boots, sessions, puffs = {got}; before the cut they came to {full}",
            )
