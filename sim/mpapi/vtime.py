"""The `time` module on the virtual clock, with the ESP32's 30-bit ticks.

Installed as sys.modules["time"] before the firmware is imported.
"""

import micropython
import utime
from micropython import const

from sim.kernel import K, Kernel

_MAX = const(0x3FFFFFFF)  # the ESP32's ticks period is 2**30
_HALF = const(0x20000000)
_EPOCH_S = 1767225600  # virtual t=0 is 2026-01-01 00:00:00 UTC
# K's methods, called through the class: looked up on the instance, a method
# first misses the kernel's (nearly full) attribute map, probing it to the end
_run_until = Kernel.run_until


@micropython.native
def ticks_us():
    return (K.now_us + K.ticks_offset_us) & _MAX


def ticks_ms():
    return ((K.now_us + K.ticks_offset_us) // 1000) & _MAX


ticks_cpu = ticks_us


def ticks_add(ticks, delta):
    return (ticks + delta) & _MAX


@micropython.native
def ticks_diff(a, b):
    return ((a - b + _HALF) & _MAX) - _HALF


naps = 0  # sleeps so far: a new main-loop pass after each (sim/mpapi/vstdin.py)


def sleep_us(us):
    global naps
    naps += 1
    if us > 0:
        _run_until(K, K.now_us + us)


@micropython.native
def sleep_ms(ms):
    global naps
    naps += 1
    if ms > 0:
        _run_until(K, K.now_us + ms * 1000)


def sleep(s):
    sleep_us(int(s * 1000000))


def time():
    return _EPOCH_S + K.now_us // 1000000


def time_ns():
    return (_EPOCH_S * 1000000 + K.now_us) * 1000


def gmtime(secs=None):
    return utime.gmtime(time() if secs is None else secs)


localtime = gmtime
mktime = utime.mktime
