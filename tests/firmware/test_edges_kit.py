"""The kit's other limits at their edges -- charging, the charger's gates,
the buttons' timing, the daily limit, bonds, frames, the unit's ADC record
and the sense at rest: just inside nothing
happens, just outside it does. As in test_edges.py, each limit is read from
the firmware's source; docs/safety.md#every-limit-and-its-test lists them.
CPython on stand-in hardware (fw_harness)."""

from __future__ import annotations

from typing import Any

import fw_harness as fw
import pytest
from fw_edges import Heater, limit

charge_loop = fw.firmware("charge_loop")
charger = fw.firmware("charger")
device = fw.firmware("device")
indicator = fw.firmware("indicator")
usage = fw.firmware("usage")
bonds = fw.firmware("bonds")
framing = fw.firmware("framing")
faults = fw.firmware("faults")
gauge = fw.firmware("gauge")
board = fw.firmware("board")
states = fw.firmware("states")

CL = charge_loop
TICK = charger.TICK_MS
V_FULL = CL.V_FULL_MV
V_OVER = limit(CL, "_V_OVER_MV")


def loop(i_cc: int = 2000) -> Any:
    return CL.ChargeLoop(i_cc, 58, 55, 240 * 60_000, 30 * 60_000)


# --- the charge loop ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inside", "outside", "zone_in", "zone_out"),
    [(0, -1, 1, 0), (99, 100, 1, 2), (449, 450, 2, 3), (600, 601, 3, 4)],
)
def test_temperature_windows_at_their_edges(
    inside: int, outside: int, zone_in: int, zone_out: int
) -> None:
    """0 C, 10 C, 45 C and 60 C (0.1 C units): none below 0, a fifth of the
    current to 10, full to 45, 4.0 V to 60, none above."""
    assert (CL.zone(inside), CL.zone(outside)) == (zone_in, zone_out)


def test_what_each_window_allows() -> None:
    i_cc = 2000
    warm = CL.V_WARM_MV
    cases = [(-1, 0, V_FULL), (0, i_cc // 5, V_FULL), (100, i_cc, V_FULL), (450, i_cc, warm),
             (600, i_cc, warm), (601, 0, V_FULL)]  # fmt: skip
    for temp, iset, target in cases:
        lp = loop(i_cc)
        lp.zone = CL.zone(temp)  # already in that window
        got = lp.step(True, 3600, 0, temp, TICK)
        assert (got, lp.v_target_mv) == (iset, target), temp


def test_leaving_a_stricter_window_needs_the_hysteresis() -> None:
    hyst = limit(CL, "_HYST_DC")
    for start, edge, step in ((-10, 0, 1), (700, 600, -1)):  # cold side, hot side
        lp = loop()
        lp.step(True, 3600, 0, start, TICK)
        assert lp.state == CL.WAIT
        lp.step(True, 3600, 0, edge + step * (hyst - 1), TICK)
        assert lp.state == CL.WAIT  # inside the window by less than the hysteresis
        lp.step(True, 3600, 0, edge + step * hyst, TICK)
        assert lp.state != CL.WAIT
    lp = loop()  # a stricter window applies at once
    lp.step(True, 3600, 0, 250, TICK)
    lp.step(True, 3600, 0, 450, TICK)
    assert lp.v_target_mv == CL.V_WARM_MV


def test_over_voltage_above_the_target_by_its_margin_on_two_samples() -> None:
    lp = loop()
    for _ in range(5):
        lp.step(True, V_FULL + V_OVER, 0, 250, TICK)
    assert lp.state != CL.FAULT
    lp.step(True, V_FULL + V_OVER + 1, 0, 250, TICK)
    assert lp.state != CL.FAULT
    lp.step(True, V_FULL + V_OVER, 0, 250, TICK)  # one good sample: the count starts over
    lp.step(True, V_FULL + V_OVER + 1, 0, 250, TICK)
    assert lp.state != CL.FAULT
    assert lp.step(True, V_FULL + V_OVER + 1, 0, 250, TICK) == 0
    assert (lp.state, lp.fault) == (CL.FAULT, faults.CHARGE_OVERVOLT)


def test_precharge_below_its_voltage() -> None:
    pre = limit(CL, "_V_PRE_MV")
    lp = loop()
    assert lp.step(True, pre - 1, 0, 250, TICK) == 2000 // 10
    assert lp.state == CL.PRE
    assert lp.step(True, pre, 0, 250, TICK) > 2000 // 10
    assert lp.state == CL.CC


def test_a_precharge_times_out() -> None:
    lp = CL.ChargeLoop(2000, 58, 55, 240 * 60_000, 30 * 60_000)
    t = 0
    while lp.state != CL.FAULT and t < 40 * 60_000:
        lp.step(True, 2800, 0, 250, TICK)
        t += TICK
    assert lp.fault == faults.CHARGE_TIMEOUT
    assert 30 * 60_000 < t <= 30 * 60_000 + TICK


def test_a_charge_times_out_at_three_times_its_timeout_whatever_the_current() -> None:
    lp = loop()
    t = 0
    while lp.state != CL.FAULT and t < 13 * 3600_000:
        lp.step(True, 3900, 1, 250, TICK)  # a trickle: full-current time hardly grows
        t += TICK
    assert lp.fault == faults.CHARGE_TIMEOUT
    assert 3 * 240 * 60_000 < t <= 3 * 240 * 60_000 + TICK


def test_termination_after_its_time_below_the_termination_current() -> None:
    term_ms = limit(CL, "_TERM_MS")
    lp = loop()
    lp.step(True, 4190, 2000, 250, TICK)
    lp.step(True, 4205, 1000, 250, TICK)
    assert lp.state == CL.CV
    lp._i_q3 = 58 << 3  # filtered current at the threshold: not below
    for _ in range(3 * term_ms // TICK):
        lp.step(True, 4200, 58, 250, TICK)
    assert lp.state == CL.CV
    lp._i_q3 = 57 << 3
    n = 0
    while lp.state == CL.CV:
        lp.step(True, 4200, 57, 250, TICK)
        n += 1
    assert lp.state == CL.DONE and n * TICK == term_ms


def test_a_done_charge_starts_again_below_its_recharge_voltage() -> None:
    drop = limit(CL, "_V_RECHARGE_MV")
    lp = loop()
    lp.state = CL.DONE
    assert lp.step(True, V_FULL - drop, 0, 250, TICK) == 0 and lp.state == CL.DONE
    assert lp.step(True, V_FULL - drop - 1, 0, 250, TICK) > 0
    assert lp.state in (CL.CC, CL.CV)  # a new charge


def test_the_charge_currents_of_the_two_stages() -> None:
    h = Heater()
    p = charger.Power(h.hc, faults.FaultLog(), lambda text: None)
    assert (p.usb_loop.i_cc_ma, p.usb_loop.i_term_ma) == (2000, 58)
    assert (p.hold_loop.i_cc_ma, p.hold_loop.i_term_ma) == (2100, 180)
    assert (p.usb_loop.timeout_ms, p.usb_loop.pre_timeout_ms) == (240 * 60_000, 30 * 60_000)
    assert (p.hold_loop.timeout_ms, p.hold_loop.pre_timeout_ms) == (10 * 60_000, 60_000)


# --- the charger: USB, its own reserve, the session gate ---------------------------------------


class Mux:
    """The charger's multiplexed inputs: one microvolt value per channel."""

    def __init__(self, p: Any):
        self.uv = {
            board.MUX_CHG_V: 3800 * 500,
            board.MUX_CHG_I: board.CHG_I_MID_UV,
            board.MUX_CHG_NTC: 1_650_000,
            board.MUX_HCHG_I: 0,
            board.MUX_VBUS: 0,
        }
        p._mux.read_uv = lambda ch: self.uv[ch]


def power(hold_mv: int = 4100) -> tuple[Any, Any, Mux]:
    h = Heater()
    h.set(cell_mv=hold_mv)
    p = charger.Power(h.hc, faults.FaultLog(), lambda text: None)
    return h, p, Mux(p)


def test_usb_is_present_from_its_minimum_voltage() -> None:
    vmin = limit(charger, "_VBUS_MIN_MV")
    for mv, present in ((vmin, True), (vmin - 1, False)):
        _, p, mux = power()
        mux.uv[board.MUX_VBUS] = mv * 1000 // board.VBUS_DIV
        p._measure(True)
        assert p.usb is present, mv


def test_the_charger_keeps_its_reserve_with_hysteresis() -> None:
    reserve = limit(charger, "_RESERVE_CPCT")
    chg_min = limit(charger, "_CHG_MIN_MV")
    _, p, mux = power()
    p.start()
    p.chg._set_soc(reserve)
    p._tick(0, TICK, False)
    assert not p.charger_empty  # at its reserve: not empty yet
    p.chg._set_soc(reserve - 1)
    p._tick(TICK, TICK, False)
    assert p.charger_empty
    p.chg._set_soc(reserve + 99)  # within the hysteresis: still empty
    p._tick(2 * TICK, TICK, False)
    assert p.charger_empty
    p.chg._set_soc(reserve + 100)
    p._tick(3 * TICK, TICK, False)
    assert not p.charger_empty
    mux.uv[board.MUX_CHG_V] = (chg_min - 1) * 1000 // board.CHG_V_DIV  # a sagging cell
    p._tick(4 * TICK, TICK, False)
    assert p.charger_empty


def test_a_session_is_refused_one_hundredth_of_a_percent_short_of_what_it_needs() -> None:
    h, p, _ = power()
    p.start()
    p.hold._set_soc(10000)
    p._gate()
    assert h.hc.safety.start_block == faults.NONE and not p.holder_low
    # the gate's need, found as the lowest state of charge it accepts
    lo, hi = 0, 10000
    while lo < hi:
        mid = (lo + hi) // 2
        p.hold._set_soc(mid)
        p._gate()
        lo, hi = (lo, mid) if not p.holder_low else (mid + 1, hi)
    need = lo
    t = p.hold_dc
    uah = charger.SESSION_UAH["standard"]
    v_end = (
        limit(charger, "_END_MV")
        + limit(charger, "_END_MA") * gauge.r_mohm_at(board.HOLDER_R_MOHM, t) // 1000
    )
    expect = uah // (board.HOLDER_CELL_MAH // 10) + gauge.soc_from_ocv(v_end)
    expect += limit(charger, "_GAUGE_MARGIN_CPCT")
    assert abs(need - expect) <= 1  # the gauge's SoC resolution
    p.hold._set_soc(need - 2)
    p._gate()
    assert p.holder_low and h.hc.safety.start_block == faults.HOLDER_LOW


# --- buttons: debounce, hold times, the double click ----------------------------------------


def test_a_button_change_shorter_than_the_debounce_is_ignored() -> None:
    deb = limit(device, "_DEBOUNCE_MS")
    pin = fw._Pin(0, value=1)
    b = device.Button(pin)
    assert b.poll(0) == 0
    pin.level = 0
    assert b.poll(1000) == 0  # the change seen
    assert b.poll(1000 + deb - 1) == 0  # bouncing
    pin.level = 1
    assert b.poll(1000 + deb) == 0  # gone again: no press
    pin.level = 0
    assert b.poll(2000) == 0
    assert b.poll(2000 + deb) == 1 and b.pressed  # steady for the debounce time
    pin.level = 1
    assert b.poll(3000) == 0
    assert b.poll(3000 + deb) == 2 and not b.pressed


def _device() -> tuple[Any, Any, Any, list[str]]:
    h = Heater()
    calls: list[str] = []
    cpin = fw._Pin(0, value=1)
    _, p, _ = power()
    d = device.Device(h.hc, indicator.Indicator(), p, cpin, lambda: calls.append("reset"))
    d.on_double_click = lambda now: calls.append(f"double {now}")
    return h, d, cpin, calls


def _press(d: Any, pin: Any, at_ms: int, press_ms: int) -> None:
    """The button down from at_ms for press_ms, the main loop polling every
    millisecond until the release is through the debounce."""
    deb = limit(device, "_DEBOUNCE_MS")
    for t in range(at_ms, at_ms + press_ms + deb + 1):
        pin.level = 0 if t < at_ms + press_ms else 1
        d.service(t)


# The debounce delays the press and the release alike: a press of P ms is
# seen held for P - 1 ms at the last poll before its release is through.


def test_a_session_starts_after_the_holder_button_is_held_its_time() -> None:
    hold = device.HOLD_START_MS
    h, d, _, _ = _device()
    _press(d, h.hc.button, 0, hold)
    assert h.hc._req == 0  # a click, not a start
    h, d, _, _ = _device()
    _press(d, h.hc.button, 0, hold + 1)
    assert h.hc._req == 1  # start requested


def test_the_charger_button_held_switches_off_and_resets() -> None:
    _, d, cpin, calls = _device()
    _press(d, cpin, 0, device.HOLD_ONOFF_MS)
    assert d.power.on and not calls
    _press(d, cpin, 10_000, device.HOLD_ONOFF_MS + 1)
    assert not d.power.on and not calls  # switched off on release
    _press(d, cpin, 30_000, device.HOLD_RESET_MS)
    assert "reset" not in calls
    _press(d, cpin, 60_000, device.HOLD_RESET_MS + 1)
    assert "reset" in calls


@pytest.mark.parametrize(("gap", "double"), [(0, True), (1, False)])
def test_a_double_click_is_two_releases_within_its_time(gap: int, double: bool) -> None:
    win = limit(device, "_DOUBLE_CLICK_MS")
    _, d, cpin, calls = _device()
    _press(d, cpin, 1000, 50)
    _press(d, cpin, 1000 + win + gap, 50)  # released win (+ gap) ms after the first
    assert any(c.startswith("double") for c in calls) is double, calls


# --- the daily limit, bonds, frames ------------------------------------------------------------


def test_the_daily_limit_counts_sessions_in_the_last_24_hours() -> None:
    day_s = limit(usage, "_DAY_S")
    fw.clock().us = 0  # the uptime clock from 0, whatever ran before
    s = {"locked": False, "limit": 2, "sharing": True}
    u = usage.Usage(s)
    u.started(0)
    assert u.refusal() is None
    u.started(1000)
    assert u.refusal() == "limit" and u.limit_reached()
    first_s = u._t[0]
    u.now_s = first_s + day_s - 1  # the first session is 24 h old less a second
    assert u.sessions_24h() == 2 and u.refusal() == "limit"
    u.now_s = first_s + day_s  # 24 h old: no longer counted
    assert u.sessions_24h() == 1 and u.refusal() is None
    s["limit"] = 0
    assert not u.limit_reached()
    s["locked"] = True
    assert u.refusal() == "locked"


def test_a_start_refused_at_its_first_measurement_is_no_session() -> None:
    """A warm blade refused once it heated (faults.BLADE_WARM) is withdrawn
    from the history: it neither counts towards the daily limit nor shows."""
    fw.clock().us = 0
    s = {"locked": False, "limit": 1, "sharing": True}
    u = usage.Usage(s)
    u.started(0)
    assert u.refusal() == "limit"
    u.withdrawn()
    assert u.refusal() is None and u.sessions_24h() == 0 and u._n == 0
    s["limit"], s["sharing"] = 0, False  # nothing kept: nothing to withdraw
    u.started(0)
    u.withdrawn()
    assert u._n == 0


def test_bonds_are_kept_up_to_their_limits(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fw.firmware("store")._newest.clear()
    b = bonds.Bonds()
    key, val = bytes(range(bonds.MAX_KEY)), bytes(bonds.MAX_VALUE)
    assert b.put(1, key, val)
    assert not b.put(1, key + b"x", val)  # a key one byte longer
    assert not b.put(1, key, val + b"x")  # a value one byte longer
    assert not b.put(0, key, val) and not b.put(4, key, val)  # sec_type 1..3
    assert b.put(3, key, val)
    assert (b.get(1, 0, key), b.get(3, 0, key)) == (val, val)
    for k in range(1, bonds.MAX_BONDS):
        assert b.put(1, bytes([k]), b"v")
    assert len(b.peers()) == bonds.MAX_BONDS and b.has(key)
    assert b.put(2, bytes([1]), b"w")  # a known peer's other secret: nobody goes
    assert len(b.peers()) == bonds.MAX_BONDS and b.has(key)
    assert b.put(1, b"new", b"v")  # one peer more: the oldest goes
    assert len(b.peers()) == bonds.MAX_BONDS and not b.has(key) and b.has(b"new")
    assert b.save()
    assert bonds.Bonds().peers() == b.peers()  # as saved
    assert (bonds.MAX_BONDS, bonds.MAX_KEY, bonds.MAX_VALUE) == (12, 16, 128)


def test_a_text_frame_carries_at_most_its_payload_limit() -> None:
    top = framing.MAX_PAYLOAD
    assert len(framing.text_frame(framing.T_EVENT, "x" * top)) == top + framing.OVERHEAD
    assert len(framing.text_frame(framing.T_EVENT, "x" * (top + 1))) == top + framing.OVERHEAD
    assert top == 255  # the frame's length byte


def test_a_profile_is_checked_at_its_limits() -> None:
    profiles = fw.firmware("profiles")
    top = profiles.MAX_SETPOINT_C
    ramp = limit(profiles, "_MAX_RAMP_S")
    cases = [
        ((20, 2, ((0, top),)), True),
        ((20, 2, ((0, top + 1),)), False),
        ((20, 2, ((0, 300), (ramp, 310))), True),  # a ramp of the longest length
        ((20, 2, ((0, 300), (ramp + 1, 310))), False),
        ((20, 2, ((0, 300), (ramp + 50, 300))), True),  # a plateau is no ramp
        ((20, 10, ((0, 300),)), True),
        ((20, 11, ((0, 300),)), False),  # a band of more than 10 %
        ((20, 0, ((0, 300),)), False),
        ((0, 2, ((0, 300),)), False),
        ((20, 2, ((1, 300),)), False),  # not from t=0
        ((20, 2, ((0, 300), (10, 300), (5, 300))), False),  # time going back
    ]
    for entry, ok in cases:
        profiles.PROFILES["edge"] = entry
        try:
            if ok:
                profiles.check("edge")
            else:
                with pytest.raises(ValueError):
                    profiles.check("edge")
        finally:
            del profiles.PROFILES["edge"]


def test_the_fault_log_keeps_its_last_entries() -> None:
    size = limit(faults, "_LOG_SIZE")
    log = faults.FaultLog()
    for k in range(size):
        log.record(1 + k % 9, 100 * k, k)
    assert len(log.entries()) == size and log.entries()[0] == (1, 0, 0)
    log.record(faults.OVER_TEMP, 99_999, 7)
    got = log.entries()
    assert len(got) == size and got[0] == (2, 100, 1) and got[-1] == (faults.OVER_TEMP, 99_999, 7)
    assert log.count == size + 1


# --- the unit's ADC record (adccal.py) ---------------------------------------------------------

adccal = fw.firmware("adccal")


def _adc_rec(**change: int) -> dict[str, int]:
    rec = dict(adccal.DEFAULTS)
    rec.update(change)
    return rec


def test_an_adc_record_is_used_up_to_each_of_its_limits() -> None:
    """adccal.valid at each field's edges: a record one past any is refused."""
    mid = board.CHG_I_MID_UV
    floor_max = limit(adccal, "_FLOOR_MAX_UV")
    mid_tol = limit(adccal, "_MID_TOL_UV")
    off_max = limit(adccal, "_OFFSET_MAX_UV")
    gain_max = limit(adccal, "_GAIN_MAX_PPM")
    for field, inside, outside in (
        ("floor_uv", 0, -1),
        ("floor_uv", floor_max, floor_max + 1),
        ("chg_i_zero_uv", mid - mid_tol, mid - mid_tol - 1),
        ("chg_i_zero_uv", mid + mid_tol, mid + mid_tol + 1),
        ("offset_uv", -off_max, -off_max - 1),
        ("offset_uv", off_max, off_max + 1),
        ("gain_ppm", -gain_max, -gain_max - 1),
        ("gain_ppm", gain_max, gain_max + 1),
    ):
        assert adccal.valid(_adc_rec(**{field: inside})), (field, inside)
        assert not adccal.valid(_adc_rec(**{field: outside})), (field, outside)
    assert (floor_max, mid_tol, off_max, gain_max) == (300_000, 150_000, 100_000, 60_000)


def test_an_adc_record_out_of_its_limits_is_not_used(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = fw.firmware("store")
    store._newest.clear()
    store.save(adccal.FILE, _adc_rec(offset_uv=limit(adccal, "_OFFSET_MAX_UV") + 1))
    store._newest.clear()
    c = adccal.load()
    assert not c.stored and (c.floor_uv, c.offset_uv) == (adccal.IDF_FLOOR_UV, 0)
    store.save(adccal.FILE, _adc_rec(floor_uv=150_000, offset_uv=-2000, gain_ppm=10_000))
    store._newest.clear()
    c = adccal.load()
    assert c.stored and (c.floor_uv, c.rest_uv) == (150_000, 150_000 + adccal.MARGIN_UV)


def test_a_sense_at_or_below_its_rest_reads_nothing() -> None:
    """A current sense at rest reads the ADC's floor (142 mV at 0 V on the
    ESP32), not 0: up to the floor and its margin it is no signal."""
    rest = adccal.IDF_FLOOR_UV + adccal.MARGIN_UV
    assert (adccal.IDF_FLOOR_UV, adccal.MARGIN_UV) == (142_000, 25_000)
    c = adccal.AdcCal(dict(adccal.DEFAULTS), False)
    try:
        adccal.use(c)
        assert adccal.sense(rest) == 0
        assert adccal.sense(rest + 1) == rest + 1  # nominal: no offset or gain
        assert adccal.fix(rest) == rest
        c = adccal.AdcCal(_adc_rec(offset_uv=1000, gain_ppm=50_000), True)
        adccal.use(c)  # a reading 5 % high and 1 mV up: taken out
        x = 1_000_000
        assert abs(adccal.fix(x + 1000 + x * 5 // 100) - x) <= 20
        assert adccal.sense(c.rest_uv) == 0 and adccal.sense(c.rest_uv + 1) > 0
    finally:
        adccal.use(adccal.AdcCal(dict(adccal.DEFAULTS), False))
