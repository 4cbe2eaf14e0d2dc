"""The firmware's pure parts, unit- and property-tested in CPython (see
fw_harness). The arithmetic audit of the whole control step (Int30: no
bigint, which on the ESP32 would be a heap allocation in the timer callback)
is tests/firmware/test_arithmetic.py; the limits at their edges,
tests/firmware/test_limits.py."""

from __future__ import annotations

import binascii

import fw_harness as fw
import pytest
from fw_harness import BigIntError, Int30
from hypothesis import assume, given, settings
from hypothesis import strategies as st

heater_ctl = fw.firmware("heater_ctl")
heater_safety = fw.firmware("heater_safety")
profiles = fw.firmware("profiles")
puff_detect = fw.firmware("puff_detect")
framing = fw.firmware("framing")
ntc = fw.firmware("ntc")
calib = fw.firmware("calib")
faults = fw.firmware("faults")
states = fw.firmware("states")
board = fw.firmware("board")
telemetry = fw.firmware("telemetry")

SETTLE = settings(max_examples=300, deadline=None, derandomize=True)


def _cal(r0_uohm: int = 800000, tcr_ppm: int = 3500):  # type: ignore[no-untyped-def]
    return calib.Calibration(r0_uohm, tcr_ppm, True)


# --- temperature from resistance ----------------------------------------------------


def test_temperature_from_resistance() -> None:
    cal = _cal()
    # R = R0 (1 + a (T - 20)): at 320 C, R = 0.8 * 2.05 = 1.64 ohm; 3.28 V / 2 A
    assert heater_ctl.temp_cc(32800, 2000, cal.r0_10u, cal.r0tcr_uohm_k) == 32000
    assert heater_ctl.temp_cc(16000, 2000, cal.r0_10u, cal.r0tcr_uohm_k) == 2000


def test_a_resistance_above_three_r0_reads_as_three_r0() -> None:
    """The clamp that keeps (R - R0) * 1000 a small int, at its edge: R up to
    3 R0 reads as itself, anything above as 3 R0 (20 C + 2 / alpha: 591 C)."""
    cal = _cal()
    at_edge = heater_ctl.temp_cc(3 * 16000, 2000, cal.r0_10u, cal.r0tcr_uohm_k)  # R = 3 R0
    assert at_edge == 59142  # 20 C + 2 / 0.0035, in 0.01 C
    assert heater_ctl.temp_cc(3 * 16000 - 20, 2000, cal.r0_10u, cal.r0tcr_uohm_k) < at_edge
    for v in (3 * 16000 + 20, 62000):  # just above, and the ADC rail
        assert heater_ctl.temp_cc(v, 2000, cal.r0_10u, cal.r0tcr_uohm_k) == at_edge


@SETTLE
@given(
    v=st.integers(0, 62000),  # heater volts in 100 uV, up to the ADC rail x2
    i=st.integers(50, 6200),  # mA, above the validity floor
    r0=st.integers(400000, 1500000),
    tcr=st.integers(2500, 4500),
)
def test_temperature_maths_fits_small_ints(v: int, i: int, r0: int, tcr: int) -> None:
    cal = _cal(r0, tcr)
    heater_ctl.temp_cc(Int30(v), Int30(i), Int30(cal.r0_10u), Int30(cal.r0tcr_uohm_k))


def test_int30_does_catch_a_bigint() -> None:
    """The audit above can fail: R in 1 uOhm units would overflow."""
    with pytest.raises(BigIntError):
        _ = Int30(62000) * Int30(100000)


# --- the whole control step, on stand-in hardware ------------------------------------------


class _Log:
    def record(self, code: int, t: int, detail: int) -> None:
        pass


def _controller(state: int):  # type: ignore[no-untyped-def]
    tele = telemetry.Telemetry(out=bytearray())
    hc = heater_ctl.HeaterControl(_cal(), profiles.Profile("standard"), tele, _Log())
    hc.state = state
    hc._en = True
    hc._duty = 20000
    return hc


def test_step_in_heating_sets_a_duty_and_stays_in_bounds() -> None:
    hc = _controller(states.HEATING)
    fw.clock().us = 100_000_000
    hc._t0_us = 70_000_000
    # 1.6 ohm blade (about 300 C) on a 3.9 V cell
    hc.adc_vh.uv, hc.adc_ih.uv, hc.adc_cell.uv = 1_600_000, 1_000_000, 1_950_000
    hc.adc_cell_ntc.uv = hc.adc_amb_ntc.uv = ntc.uv_at_c(20)
    hc.stick.level = 1
    hc.step(None)
    assert hc.fault == faults.NONE
    assert 1024 <= hc._duty <= 65535


# --- safety ---------------------------------------------------------------------------


def _ok_readings() -> dict[str, int]:
    return {
        "sampled": True, "v_mv": 3200, "i_ma": 2000, "cell_mv": 3900, "vh_uv": 1_600_000,
        "ih_uv": 1_000_000, "cell_ntc_uv": ntc.uv_at_c(25), "amb_ntc_uv": ntc.uv_at_c(20),
        "stick": 1,
    }  # fmt: skip


def test_safety_passes_a_healthy_heater() -> None:
    assert heater_safety.HeaterSafety(_cal()).check_heating(**_ok_readings()) == 0


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"stick": 0}, "STICK_MISSING"),
        ({"i_ma": 0}, "HEATER_OPEN"),
        ({"v_mv": 100}, "HEATER_SHORT"),
        ({"i_ma": 6500}, "HEATER_SHORT"),
        ({"vh_uv": 3_100_000}, "ADC_IMPLAUSIBLE"),
        ({"v_mv": 4300}, "ADC_IMPLAUSIBLE"),  # heater above the cell
        ({"cell_mv": 1500}, "ADC_IMPLAUSIBLE"),
        ({"v_mv": 3900, "cell_mv": 4100, "i_ma": 2000}, "OVER_TEMP"),  # 1.95 ohm: ~380 C
    ],
)
def test_safety_names_the_fault(change: dict[str, int], fault: str) -> None:
    r = _ok_readings() | change
    assert heater_safety.HeaterSafety(_cal()).check_heating(**r) == getattr(faults, fault)


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"cell_mv": 2900}, "CELL_UNDERVOLT"),
        ({"cell_ntc_uv": ntc.uv_at_c(65)}, "CELL_OVERTEMP"),
        ({"amb_ntc_uv": ntc.uv_at_c(-3)}, "AMBIENT_COLD"),
        ({"amb_ntc_uv": ntc.uv_at_c(53)}, "AMBIENT_HOT"),
    ],
)
def test_slow_signals_trip_on_the_second_sample(change: dict[str, int], fault: str) -> None:
    s = heater_safety.HeaterSafety(_cal())
    r = _ok_readings() | change
    assert s.check_heating(**r) == 0
    assert s.check_heating(**r) == getattr(faults, fault)


@SETTLE
@given(temp=st.floats(0.0, 344.0), i_ma=st.integers(500, 5000))
def test_no_heater_fault_anywhere_in_the_working_range(temp: float, i_ma: int) -> None:
    """A good track at any temperature below the trip point never trips."""
    cal = _cal()
    r_mohm = 800 * (1 + 0.0035 * (temp - 20))
    v = int(r_mohm * i_ma / 1000)
    assume(v <= 4100)  # the heater sees at most the full cell
    r = _ok_readings() | {"i_ma": i_ma, "v_mv": v, "cell_mv": max(3900, v + 100)}
    assert heater_safety.HeaterSafety(cal).check_heating(**r) == 0


def test_over_temperature_threshold_matches_the_calibration() -> None:
    for r0, tcr in ((720000, 3000), (880000, 3800)):
        s = heater_safety.HeaterSafety(_cal(r0, tcr))
        r_cap = r0 / 1e6 * (1 + tcr / 1e6 * (345 - 20))
        assert abs(s.r_cap_100u / 1e4 - r_cap) < 0.0002


# --- profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", profiles.names())
def test_profiles_stay_below_the_cap(name: str) -> None:
    p = profiles.Profile(name)
    sps = [p.setpoint_cc(t) for t in range(0, 400_000, 50)]
    assert max(sps) <= profiles.MAX_SETPOINT_C * 100 < 35000
    assert min(sps) > 0


def test_profile_interpolates_ramps_and_rewinds() -> None:
    p = profiles.Profile("standard")
    assert p.setpoint_cc(10_000) == 32000
    assert p.setpoint_cc(22_000) == 31000  # half-way down the 320 -> 300 ramp
    assert p.setpoint_cc(100_000) == 30000
    assert p.setpoint_cc(5_000) == 32000  # time went back: starts over


def test_an_unknown_or_bad_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.Profile("scorching")
    profiles.PROFILES["bad"] = (20, 2, ((0, 360),))
    try:
        with pytest.raises(ValueError, match="set-point out of range"):
            profiles.check("bad")
    finally:
        del profiles.PROFILES["bad"]


# --- puff detection -------------------------------------------------------------------


def _run_detector(loss: list[int]) -> tuple[int, list[int]]:
    """Feed the detector a loss conductance (0.1 mW/K) per control period."""
    d = puff_detect.PuffDetector()
    d.start(loss[0])
    starts = [k + 1 for k, x in enumerate(loss[1:]) if d.update(x)]
    return d.count, starts


def test_a_puff_is_a_sharp_rise_of_the_loss() -> None:
    base = [150] * 600
    puff = [150 + min(k, 30) * 4 for k in range(200)]  # +12 mW/K within 0.3 s, for 2 s
    count, starts = _run_detector(base + puff + [150] * 1500)
    assert count == 1
    assert 600 < starts[0] < 660


def test_a_puff_under_way_when_counting_starts_counts_when_it_ends() -> None:
    count, starts = _run_detector([260] * 100 + [150] * 1000)  # a draw from the first moment
    assert count == 1
    assert 100 < starts[0] < 160


@pytest.mark.parametrize(
    "slope", [-0.1, 0.05]
)  # the plug warming; a warmer room's plug cooling less
def test_slow_changes_are_not_puffs(slope: float) -> None:
    ramp = [round(200 + k * slope) for k in range(1500)]  # 15 s: -150 or +75
    assert _run_detector([200] * 300 + ramp)[0] == 0


@SETTLE
@given(st.lists(st.integers(-10, 10), min_size=300, max_size=3000))
def test_noise_alone_is_never_a_puff(noise: list[int]) -> None:
    assert _run_detector([150 + n for n in noise])[0] == 0


# --- framing and thermistors ----------------------------------------------------------


@SETTLE
@given(st.binary(max_size=255))
def test_crc_matches_the_hosts(data: bytes) -> None:
    buf = bytearray(data)
    assert framing.crc16(buf, 0, len(buf)) == binascii.crc_hqx(data, 0xFFFF)


@pytest.mark.parametrize("temp", [-20, 0, 25, 50, 60, 85])
def test_thermistor_table_round_trips(temp: int) -> None:
    assert abs(ntc.dc_from_uv(ntc.uv_at_c(temp)) - temp * 10) <= 2
