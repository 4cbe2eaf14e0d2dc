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
import json
import sys
import types
from collections.abc import Callable
from typing import Any

from hil.paths import FIRMWARE_DIR

UNIQUE_ID = "240ac4123456"  # machine.unique_id() of the stand-in board (a base MAC)
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

    def __rmod__(self, o: int) -> Int30:
        return _check(int(o) % int(self))

    def __rlshift__(self, o: int) -> Int30:
        return _check(int(o) << int(self))

    def __rrshift__(self, o: int) -> Int30:
        return _check(int(o) >> int(self))

    def __xor__(self, o: int) -> Int30:
        return _check(int(self) ^ int(o))

    __rxor__ = __xor__

    def __pow__(self, o: int) -> Int30:  # type: ignore[override]
        return _check(int(self) ** int(o))

    def __neg__(self) -> Int30:
        return _check(-int(self))

    def __pos__(self) -> Int30:
        return self

    def __abs__(self) -> Int30:
        return _check(abs(int(self)))

    def __invert__(self) -> Int30:
        return _check(~int(self))


_audit = False  # arrays and the clock hand out Int30s (audit())


class audit:  # a context manager, named as used: `with fw.audit():`
    """Within it, what the firmware reads from its int arrays and its clock
    is Int30 too: on the ESP32 an array element or a tick count past 30 bits
    is a bigint (allocated) as soon as it is read."""

    def __enter__(self) -> None:
        global _audit
        _audit = True

    def __exit__(self, *exc: object) -> None:
        global _audit
        _audit = False


class _Array(list):  # type: ignore[type-arg]
    """array.array of the firmware, as it behaves on the ESP32 in audit()."""

    def __init__(self, typecode: str, init: Any = ()):
        super().__init__(init)
        self.typecode = typecode

    def __getitem__(self, i: Any) -> Any:
        v = super().__getitem__(i)
        if _audit and isinstance(v, int) and self.typecode in "bBhHiIlLqQ":
            return _check(v)
        return v


def _identity(f: Callable[..., Any]) -> Callable[..., Any]:
    return f


def _tick(v: int) -> int:
    return Int30(v) if _audit else int(v)


class _Clock:
    """ticks on a settable clock, with the ESP32's 30-bit wrap."""

    us = 0

    @classmethod
    def module(cls) -> types.ModuleType:
        m = types.ModuleType("time")
        mask = (1 << 30) - 1
        m.ticks_us = lambda: _tick(cls.us & mask)  # type: ignore[attr-defined]
        m.ticks_ms = lambda: _tick((cls.us // 1000) & mask)  # type: ignore[attr-defined]
        m.ticks_add = lambda t, d: _tick((t + d) & mask)  # type: ignore[attr-defined]
        m.ticks_diff = lambda a, b: _tick(((a - b + (1 << 29)) & mask) - (1 << 29))  # type: ignore[attr-defined]
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
        self.mode = -1
        self.period = 0
        self.running = False

    def init(self, *, mode: int, period: int, callback: Any) -> None:
        self.callback = callback
        self.mode = mode
        self.period = period
        self.running = True

    def deinit(self) -> None:
        self.running = False


def firmware(name: str) -> types.ModuleType:
    """Import a firmware module against the stand-ins.

    CPython's own `time` is swapped out only while firmware modules import
    (they bind the ticks functions then), so the test process keeps its clock.
    """
    _install()
    swapped = {"time": _CLOCK_MODULE, **_FIRMWARE_ONLY}
    real = {k: sys.modules.get(k) for k in swapped}
    sys.modules.update(swapped)
    try:
        return importlib.import_module(name)
    finally:
        for k, v in real.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def provide(name: str, module: types.ModuleType) -> None:
    """A stand-in module (a port's `bluetooth`, say) that firmware imports get."""
    _install()
    _FIRMWARE_ONLY[name] = module


def firmware_variant(name: str, source: str) -> types.ModuleType:
    """A firmware module made from other source text (a bug put in on
    purpose), against the same stand-ins; sys.modules keeps the real one."""
    _install()
    mod = types.ModuleType(name)
    mod.__file__ = str(FIRMWARE_DIR / f"{name}.py")
    swapped = {"time": _CLOCK_MODULE, **_FIRMWARE_ONLY}
    real = {k: sys.modules.get(k) for k in swapped}
    sys.modules.update(swapped)
    try:
        exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    finally:
        for k, v in real.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod


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
    machine.disable_irq = lambda: 1  # type: ignore[attr-defined]
    machine.enable_irq = lambda state: None  # type: ignore[attr-defined]
    machine.unique_id = lambda: bytes.fromhex(UNIQUE_ID)  # type: ignore[attr-defined]
    sys.modules["machine"] = machine
    arr = types.ModuleType("array")
    arr.array = _Array  # type: ignore[attr-defined]
    _FIRMWARE_ONLY["array"] = arr
    # MicroPython's str is a buffer (the store writes and CRCs json.dumps()
    # as it is): bytes are what CPython can do that with
    js = types.ModuleType("json")
    js.dumps = lambda obj: json.dumps(obj).encode()  # type: ignore[attr-defined]
    js.loads = json.loads  # type: ignore[attr-defined]
    _FIRMWARE_ONLY["json"] = js
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))


_CLOCK_MODULE = _Clock.module()
_FIRMWARE_ONLY: dict[str, types.ModuleType] = {}  # stand-ins seen by firmware imports only


def clock() -> type[_Clock]:
    return _Clock


class NullLog:
    """A fault log that keeps nothing (faults.FaultLog's record())."""

    def record(self, code: int, t: int, detail: int) -> None:
        pass


class Branches:
    """Which way every `if` of some functions went, counted in examples: an
    example that took a branch (or passed it by) at least once counts once
    for it. Line tracing (sys.settrace), limited to the functions' code."""

    def __init__(self, *funcs: Callable[..., Any]):
        import ast
        import inspect
        import textwrap

        self.points: list[tuple[str, int, str]] = []  # (function, line of the if, its test)
        self._test_lines: dict[tuple[Any, int], int] = {}  # (code, line in a test) -> point
        self._body: dict[int, int] = {}  # point -> first line of its body
        self._codes: set[Any] = set()
        for f in funcs:
            code = f.__code__
            self._codes.add(code)
            src, first = inspect.getsourcelines(f)
            tree = ast.parse(textwrap.dedent("".join(src)))
            for node in ast.walk(tree):
                if isinstance(node, ast.If):
                    p = len(self.points)
                    line = node.lineno + first - 1
                    self.points.append((f.__qualname__, line, ast.unparse(node.test)))
                    for ln in range(node.test.lineno, (node.test.end_lineno or node.lineno) + 1):
                        self._test_lines[(code, ln + first - 1)] = p
                    self._body[p] = node.body[0].lineno + first - 1
        self.taken = [0] * len(self.points)
        self.passed = [0] * len(self.points)
        self.examples = 0
        self._last: dict[Any, int] = {}
        self._took: set[int] = set()
        self._passed: set[int] = set()

    def __enter__(self) -> Branches:
        self._took, self._passed, self._last = set(), set(), {}
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)
        self._settle_all()
        self.examples += 1
        for p in self._took:
            self.taken[p] += 1
        for p in self._passed:
            self.passed[p] += 1

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        return self._local if frame.f_code in self._codes else None

    def _settle(self, frame: Any, line: int | None) -> None:
        prev = self._last.get(frame)
        if prev is None:
            return
        p = self._test_lines.get((frame.f_code, prev))
        if p is None or (line is not None and self._test_lines.get((frame.f_code, line)) == p):
            return  # not after a test, or still in the same test (a continuation line)
        (self._took if line == self._body[p] else self._passed).add(p)

    def _settle_all(self) -> None:
        for frame in list(self._last):
            self._settle(frame, None)
        self._last.clear()

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self._settle(frame, frame.f_lineno)
            self._last[frame] = frame.f_lineno
        elif event == "return":
            self._settle(frame, None)
            self._last.pop(frame, None)
        return self._local

    def table(self) -> str:
        rows = [f"{'examples':>8} {'taken':>7} {'passed':>7}  branch"]
        for p, (func, line, test) in enumerate(self.points):
            rows.append(
                f"{self.examples:>8} {self.taken[p]:>7} {self.passed[p]:>7}  "
                f"{func}:{line} if {test}"
            )
        return "\n".join(rows)

    def missing(self) -> list[str]:
        """`if`s not seen both ways: 'func: if test (never taken|never passed)'."""
        out = []
        for p, (func, _line, test) in enumerate(self.points):
            if not self.taken[p]:
                out.append(f"{func}: if {test} (never taken)")
            if not self.passed[p]:
                out.append(f"{func}: if {test} (never passed)")
        return out
