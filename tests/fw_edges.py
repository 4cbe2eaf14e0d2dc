"""Helpers for the edge tests: the firmware's limits read from its own
source (so an edge follows its constant), and the control step driven on
stand-in hardware (fw_harness) with readings in the units the firmware
computes them in.

`Heater` sets the ADC inputs so that the step reads exactly the volts, amps
and temperatures asked for, steps on a virtual clock, and keeps what the
step did: the PWM duty, the load switch, the state, the fault and the fault
log's entries.
"""

from __future__ import annotations

from typing import Any

import fw_harness as fw

heater_ctl = fw.firmware("heater_ctl")
heater_safety = fw.firmware("heater_safety")
profiles = fw.firmware("profiles")
calib = fw.firmware("calib")
faults = fw.firmware("faults")
states = fw.firmware("states")
board = fw.firmware("board")
telemetry = fw.firmware("telemetry")
ntc = fw.firmware("ntc")
cal_check = fw.firmware("cal_check")
puff_detect = fw.firmware("puff_detect")

PERIOD_MS = heater_ctl.CONTROL_PERIOD_MS
T0_US = 5_000_000  # the virtual clock at a session's start: away from 0 and the wrap


def limit(module: Any, name: str, *other_names: str) -> Any:
    """A limit as the firmware's source defines it (fw_harness imports the
    very file; MicroPython's const() is the identity there); other_names:
    the names it goes by in other versions of the module."""
    for n in (name, *other_names):
        if hasattr(module, n):
            value = getattr(module, n)
            assert isinstance(value, (int, float)) and not isinstance(value, bool), n
            return value
    raise AssertionError(f"{module.__name__} defines none of {name}, {', '.join(other_names)}")


def cal(r0_uohm: int = 800_000, tcr_ppm: int = 3500) -> Any:
    return calib.Calibration(r0_uohm, tcr_ppm, True)


def ok_readings(**change: int) -> dict[str, int]:
    """A healthy heater mid-session (1.6 ohm: ~300 C) on a charged cell at
    room temperature, as HeaterSafety.check_heating takes them."""
    r = {
        "sampled": True, "v_mv": 3200, "i_ma": 2000, "cell_mv": 3900, "vh_uv": 1_600_000,
        "ih_uv": 1_000_000, "cell_ntc_uv": ntc.uv_at_c(25), "amb_ntc_uv": ntc.uv_at_c(20),
        "stick": 1,
    }  # fmt: skip
    r.update(change)
    return r


class Heater:
    """HeaterControl on stand-in hardware, with a real fault log."""

    def __init__(self, c: Any = None, profile: str = "standard", checked: bool = True):
        """checked: the record was found right this boot (a cold start
        measured its dR/dT as the heater's, cal_check.py), so a warm start
        reads the blade as the record does; else the first warm start reads
        it with the fail-safe slope."""
        self.log = faults.FaultLog()
        fw.clock().us = T0_US  # booted here: the heater off since
        self.tele = telemetry.Telemetry(out=bytearray())
        self.hc = heater_ctl.HeaterControl(
            c or cal(), profiles.Profile(profile), self.tele, self.log
        )
        if checked:
            self.hc.cal_check.measured_pm = cal_check.SLOPE_ONE
        self.hc.stick.level = 1
        self.now_ms = 0
        self.set(v_mv=3200, i_ma=2000, cell_mv=3900, cell_c=25.0, amb_c=20.0)

    def set(
        self,
        *,
        v_mv: int | None = None,
        v_100uv: int | None = None,
        i_ma: int | None = None,
        cell_mv: int | None = None,
        cell_c: float | None = None,
        amb_c: float | None = None,
        cell_ntc_uv: int | None = None,
        amb_ntc_uv: int | None = None,
    ) -> None:
        """ADC inputs that the step reads back as exactly these values."""
        hc = self.hc
        if v_mv is not None:  # v_100uv = vh_uv * HEATER_V_DIV // 100, v_mv = v_100uv // 10
            hc.adc_vh.uv = v_mv * 1000 // board.HEATER_V_DIV
        if v_100uv is not None:
            hc.adc_vh.uv = v_100uv * 100 // board.HEATER_V_DIV
        if i_ma is not None:
            hc.adc_ih.uv = i_ma * board.UV_PER_MA
        if cell_mv is not None:
            hc.adc_cell.uv = cell_mv * 1000 // board.CELL_V_DIV
        if cell_c is not None:
            hc.adc_cell_ntc.uv = ntc.uv_at_c(cell_c)
        if amb_c is not None:
            hc.adc_amb_ntc.uv = ntc.uv_at_c(amb_c)
        if cell_ntc_uv is not None:
            hc.adc_cell_ntc.uv = cell_ntc_uv
        if amb_ntc_uv is not None:
            hc.adc_amb_ntc.uv = amb_ntc_uv

    def step(self, at_ms: int | None = None) -> None:
        """One control step at session time at_ms (else one period on)."""
        self.now_ms = self.now_ms + PERIOD_MS if at_ms is None else at_ms
        fw.clock().us = T0_US + self.now_ms * 1000
        self.hc.step(None)

    def start(self) -> None:
        """A start request served at t=0: PREHEAT, the load switch on."""
        self.hc.request_start()
        self.step(0)

    def heating(self, temp_c: float | None = None) -> None:
        """Mid-session in HEATING, as if it had heated for a while: two
        samples measured, the reading filtered from `temp_c` (default: the
        present readings' temperature)."""
        self.start()
        hc = self.hc
        hc.state = states.HEATING
        hc.ready = True
        self.step()  # the first reading: the least duty held one more period
        self.step()  # the second: the control law runs
        if temp_c is not None:
            hc._temp_cc = int(temp_c * 100)

    @property
    def duty(self) -> int:
        return int(self.hc.pwm.duty)

    @property
    def switch_on(self) -> bool:
        return bool(self.hc.en.level)

    @property
    def cut(self) -> bool:
        """The heater off through both paths."""
        return self.duty == 0 and not self.switch_on and not self.hc._en

    def logged(self) -> list[tuple[int, int, int]]:
        return [(int(c), int(t), int(d)) for c, t, d in self.log.entries()]


def temp_reading(c: Any, target_cc: int) -> tuple[int, int]:
    """Heater volts (100 uV) and amps (mA) that heater_ctl.temp_cc reads as
    exactly target_cc (0.01 C)."""
    for i_ma in range(2000, 2400):
        # R = V/I rises by dR/dT: the first reading at or above the target
        r_10u = c.r0_10u + (target_cc - 100 * board.CAL_T0_C) * c.r0tcr_uohm_k // 1000
        v = r_10u * i_ma // 10000
        for v_100uv in range(max(1, v - 3), v + 4):
            if heater_ctl.temp_cc(v_100uv, i_ma, c.r0_10u, c.r0tcr_uohm_k) == target_cc:
                return v_100uv, i_ma
    raise AssertionError(f"no reading gives {target_cc} cC exactly")
