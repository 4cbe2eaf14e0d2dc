"""Import the firmware's pure modules into CPython for fast unit and
property tests.

MicroPython's `micropython` module, the viper pointer types and the hardware
modules are replaced by minimal stand-ins here; behaviour on the real
interpreter is tested through the simulator (tests/firmware/test_session.py and
friends). Int30 checks the one thing CPython would otherwise hide: on the
ESP32 a small int has 31 bits, and anything larger is a heap allocation.
"""

from __future__ import annotations

import builtins
import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

from hil.paths import FIRMWARE_DIR

SMALL_INT_LIMIT = 1 << 30  # ESP32: MP_SMALL_INT is 31-bit signed


class BigIntError(ArithmeticError):
    pass


def _check(v: int) -> Int30:
    if not -SMALL_INT_LIMIT <= v < SMALL_INT_LIMIT:
        raise BigIntError(f"{v} does not fit a 31-bit small int")
    return Int30(v)


class Int30(int):
    """An int whose arithmetic fails if any result would be a bigint on the ESP32."""

    def __add__(self, o: int) -> Int30:
        return _check(int(self) + int(o))

    __radd__ = __add__

    def __sub__(self, o: int) -> Int30:
        return _check(int(self) - int(o))

    def __rsub__(self, o: int) -> Int30:
        return _check(int(o) - int(self))

    def __mul__(self, o: int) -> Int30:
        return _check(int(self) * int(o))

    __rmul__ = __mul__

    def __floordiv__(self, o: int) -> Int30:
        return _check(int(self) // int(o))

    def __rfloordiv__(self, o: int) -> Int30:
        return _check(int(o) // int(self))

    def __mod__(self, o: int) -> Int30:
        return _check(int(self) % int(o))

    def __lshift__(self, o: int) -> Int30:
        return _check(int(self) << int(o))

    def __rshift__(self, o: int) -> Int30:
        return _check(int(self) >> int(o))

    def __and__(self, o: int) -> Int30:
        return _check(int(self) & int(o))

    __rand__ = __and__

    def __or__(self, o: int) -> Int30:
        return _check(int(self) | int(o))

    __ror__ = __or__

    def __neg__(self) -> Int30:
        return _check(-int(self))


def _identity(f: Callable[..., Any]) -> Callable[..., Any]:
    return f


class _Clock:
    """ticks on a settable clock, with the ESP32's 30-bit wrap."""

    us = 0

    @classmethod
    def module(cls) -> types.ModuleType:
        m = types.ModuleType("time")
        mask = (1 << 30) - 1
        m.ticks_us = lambda: cls.us & mask  # type: ignore[attr-defined]
        m.ticks_ms = lambda: (cls.us // 1000) & mask  # type: ignore[attr-defined]
        m.ticks_add = lambda t, d: (t + d) & mask  # type: ignore[attr-defined]
        m.ticks_diff = lambda a, b: ((a - b + (1 << 29)) & mask) - (1 << 29)  # type: ignore[attr-defined]
        m.sleep_ms = lambda ms: None  # type: ignore[attr-defined]
        return m


class _Pin:
    IN, OUT, PULL_UP, PULL_DOWN = 1, 3, 2, 1

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, *, value: int | None = None):
        self.id = pin_id
        self.level = value or 0

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level
        self.level = v
        return None


class _Pwm:
    def __init__(self, pin: _Pin, *, freq: int = 0, duty_u16: int = 0):
        self.duty = duty_u16

    def duty_u16(self, v: int | None = None) -> int | None:
        if v is None:
            return self.duty
        self.duty = v
        return None


class _Adc:
    ATTN_11DB = 3

    def __init__(self, pin: _Pin, *, atten: int = 0):
        self.uv = 0

    def read_uv(self) -> int:
        return self.uv


class _Timer:
    PERIODIC, ONE_SHOT = 1, 0

    def __init__(self, timer_id: int):
        self.callback = None

    def init(self, *, mode: int, period: int, callback: Any) -> None:
        self.callback = callback


def firmware(name: str) -> types.ModuleType:
    """Import a firmware module against the stand-ins.

    CPython's own `time` is swapped out only while firmware modules import
    (they bind the ticks functions then), so the test process keeps its clock.
    """
    _install()
    real_time = sys.modules["time"]
    sys.modules["time"] = _CLOCK_MODULE
    try:
        return importlib.import_module(name)
    finally:
        sys.modules["time"] = real_time


def _install() -> None:
    if getattr(sys.modules.get("micropython"), "_heatrig_shim", False):
        return
    mp = types.ModuleType("micropython")
    mp.const = lambda x: x  # type: ignore[attr-defined]
    mp.kbd_intr = lambda c: None  # type: ignore[attr-defined]
    mp.native = _identity  # type: ignore[attr-defined]
    mp.viper = _identity  # type: ignore[attr-defined]
    mp._heatrig_shim = True  # type: ignore[attr-defined]
    sys.modules["micropython"] = mp
    # viper's pointer casts, as views on the same buffer
    builtins.ptr8 = lambda b: memoryview(b).cast("B")  # type: ignore[attr-defined]
    builtins.ptr16 = lambda b: memoryview(b).cast("H")  # type: ignore[attr-defined]
    builtins.ptr32 = lambda b: memoryview(b).cast("i")  # type: ignore[attr-defined]
    machine = types.ModuleType("machine")
    machine.Pin = _Pin  # type: ignore[attr-defined]
    machine.PWM = _Pwm  # type: ignore[attr-defined]
    machine.ADC = _Adc  # type: ignore[attr-defined]
    machine.Timer = _Timer  # type: ignore[attr-defined]
    sys.modules["machine"] = machine
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))


_CLOCK_MODULE = _Clock.module()


def clock() -> type[_Clock]:
    return _Clock
