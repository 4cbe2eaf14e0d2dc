"""What a board is, measured on it: `heatrig board-check` (hil/rig/boardcheck.py)
runs this over the raw REPL on whatever is behind the port -- an ESP32, with
the firmware on it or not, or the virtual board, where the simulator's
emulation is set up first and answers for the chip. Only MicroPython's own
API is used; `measure()` returns one JSON-able dict:

- micropython: version, platform, machine;
- adc: per input of board.py, with the heater off, `N` conversions: the mean
  raw code (read_u16 >> 4), the mean reading (read_uv) and its spread, or
  the OSError a chip without calibration data raises; the calibration's
  slope (uV per code, from the reading and the code) where the code is in
  the linear range, and the eFuse Vref it implies (ESP-IDF line fitting:
  coeff_a = Vref * 196602 / 4096, docs/esp32.md);
- heap: the GC's free and used bytes; on an ESP32 also ESP-IDF's data heap
  (free, largest block: what the GC heap can grow into) and its executable
  heap (free, largest block: room for native code);
- step: a machine.Timer at the control rate for `window_ms`, its callback
  the firmware's control step (when the firmware is on the board; asleep,
  the heater off) or nothing: each start's deviation from the period (p50,
  p99, max), the step's own time (mean, max), late starts;
- flash: halfway through, a record of RECORD_BYTES written and closed, as
  the firmware's store does: the write's time and the longest gap between
  two steps around it (kept out of the jitter figures).
"""

import gc
import sys
import time
from array import array

import machine

PERIOD_MS = 10
RECORD_BYTES = 300  # a settings record: more than LittleFS keeps inline
_N = 32  # conversions per input
_BUCKET_US = 100  # the deviation histogram's resolution
_st = array("i", [0] * 10)  # n, last_us, dev_max, step_sum_us, step_max_us, late, flash_us, gap_max, gap_at_flash, busy
_hist = array("H", [0] * 100)
_step = [None]


def _cb(_t):
    st = _st
    t0 = time.ticks_us()
    if st[0]:
        dt = time.ticks_diff(t0, st[1])
        if st[9]:  # around the flash write: its own figure
            if dt > st[8]:
                st[8] = dt
        else:
            dev = dt - PERIOD_MS * 1000
            if dev < 0:
                dev = -dev
            if dev > st[2]:
                st[2] = dev
            b = dev // _BUCKET_US
            _hist[b if b < 99 else 99] += 1
            if dt > 2 * PERIOD_MS * 1000:
                st[5] += 1
            if dt > st[7]:
                st[7] = dt
    st[1] = t0
    st[0] += 1
    s = _step[0]
    if s is not None:
        s(None)
        d = time.ticks_diff(time.ticks_us(), t0)
        st[3] += d
        if d > st[4]:
            st[4] = d


def _pct(p):
    total = 0
    for v in _hist:
        total += v
    if not total:
        return 0
    k = 0
    for i in range(100):
        k += _hist[i]
        if k * 100 >= total * p:
            return i * _BUCKET_US
    return 99 * _BUCKET_US


def _adc(pins):
    out = {}
    for name, pin in pins:
        a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)
        raw = 0
        for _ in range(_N):
            raw += a.read_u16() >> 4
            time.sleep_ms(1)  # a conversion of its own each (the emulation converts as time passes)
        ch = {"pin": pin, "raw": raw // _N}
        try:
            s = s2 = 0
            for _ in range(_N):
                v = a.read_uv()
                s += v
                s2 += (v // 1000) * (v // 1000)
                time.sleep_ms(1)
            mean = s // _N
            ch["uv"] = mean
            var_mv2 = s2 / _N - (s / _N / 1000) ** 2  # read_uv comes in whole mV
            ch["noise_uv"] = int(max(0.0, var_mv2) ** 0.5 * 1000)
            r = ch["raw"]
            if 100 <= r < 2880:  # the line of the line fitting: its slope is the unit's Vref
                ch["uv_per_code"] = (mean - 142000) / r
                ch["vref_mv"] = round(ch["uv_per_code"] * 65536 / 1000 * 4096 / 196602)
        except OSError as e:
            ch["error"] = "OSError %s" % (e.args,)
        out[name] = ch
    return out


def _heap():
    gc.collect()
    h = {"gc_free": gc.mem_free(), "gc_used": gc.mem_alloc()}
    try:
        import esp32

        for key, cap in (("idf_data", esp32.HEAP_DATA), ("idf_exec", esp32.HEAP_EXEC)):
            regions = esp32.idf_heap_info(cap)
            h[key + "_free"] = sum(r[1] for r in regions)
            h[key + "_largest"] = max([r[2] for r in regions] or [0])
    except ImportError:
        pass
    return h


def _firmware_step():
    """The firmware's control step, asleep, heater off; None without the firmware."""
    try:
        import calib
        import profiles
        import telemetry
        from heater_ctl import HeaterControl
    except ImportError:
        return None

    class _Log:
        def record(self, *a):
            pass

    tele = telemetry.Telemetry(out=bytearray(), ring=False)
    return HeaterControl(calib.load(), profiles.Profile(profiles.DEFAULT), tele, _Log()).step


def _flash_write():
    t0 = time.ticks_us()
    with open("boardcheck.tmp", "wb") as f:
        f.write(bytes(RECORD_BYTES))
    us = time.ticks_diff(time.ticks_us(), t0)
    import os

    os.remove("boardcheck.tmp")
    return us


def measure(window_ms, adc_pins):
    impl = sys.implementation
    out = {
        "micropython": {
            "version": ".".join(str(x) for x in impl.version[:3]),
            "platform": sys.platform,
            "machine": getattr(impl, "_machine", ""),
        },
        "adc": _adc(adc_pins),
        "heap": _heap(),
    }
    _step[0] = _firmware_step()
    for i in range(len(_st)):
        _st[i] = 0
    for i in range(len(_hist)):
        _hist[i] = 0
    tm = machine.Timer(0)
    tm.init(mode=machine.Timer.PERIODIC, period=PERIOD_MS, callback=_cb)
    time.sleep_ms(window_ms // 2)
    _st[9] = 1  # from now on until the next step, the delay is the write's
    flash_us = _flash_write()
    time.sleep_ms(2 * PERIOD_MS)
    _st[9] = 0
    time.sleep_ms(window_ms - window_ms // 2 - 2 * PERIOD_MS)
    tm.deinit()
    st = _st
    n = st[0]
    out["step"] = {
        "firmware": _step[0] is not None,
        "steps": n,
        "window_ms": window_ms,
        "jitter_p50_us": _pct(50),
        "jitter_p99_us": _pct(99),
        "jitter_max_us": st[2],
        "late_starts": st[5],
        "step_mean_us": st[3] // n if n else 0,
        "step_max_us": st[4],
        "longest_gap_us": st[7],
    }
    out["flash"] = {"record_bytes": RECORD_BYTES, "write_us": flash_us, "step_gap_us": st[8]}
    _step[0] = None
    gc.collect()
    return out
