"""Native code on the ESP32: what a deploy puts in IRAM, against what the
port can give it.

MicroPython's ESP32 port commits the machine code of every native and viper
function it loads from a .mpy to memory it allocates with MALLOC_CAP_EXEC
(ports/esp32/main.c: esp_native_code_commit, via MP_PLAT_COMMIT_EXEC in
mpconfigport.h; py/persistentcode.c: load_raw_code commits each function
as it loads). On the ESP32 that capability is the instruction RAM left over
by the firmware's own IRAM code: bytecode lives on the GC heap, native code
does not fit anywhere else.

The budget (docs/esp32.md):
- IRAM: 128 KiB (ESP-IDF's esp32 memory layout: iram0_0_seg, 0x20000 bytes);
- MicroPython's ESP32_GENERIC build uses 118,855 bytes of it for static IRAM
  code (ESP-IDF's `idf.py size` of that build, reported in
  micropython/micropython#8260): 12,217 bytes are left to the EXEC heap;
- the heap's own bookkeeping in that region and allocations' headers: kept
  2 KiB aside. The budget is 10,169 bytes of committed code, each function
  counted as the port allocates it (its length rounded up to 4, plus the
  4-byte list link, plus the IDF heap's 8-byte block header).
`heatrig board-check` measures what a board really has (esp32.idf_heap_info).

The .mpy reader follows py/persistentcode.c (format 6): the header, the qstr
and constant tables, then the tree of raw code, each `kind_len` giving a
function's kind (bytecode, native, viper, asm) and its data's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IRAM_BYTES = 128 * 1024
STATIC_IRAM_BYTES = 118_855  # ESP32_GENERIC's static IRAM code (micropython#8260)
RESERVED_BYTES = 2048  # the EXEC heap's bookkeeping and spare
BUDGET_BYTES = IRAM_BYTES - STATIC_IRAM_BYTES - RESERVED_BYTES  # 10,169
NODE_BYTES = 4  # native_code_node_t's link (main.c)
BLOCK_HEADER_BYTES = 8  # ESP-IDF heap: per allocation

_BYTECODE, _NATIVE, _VIPER, _ASM = range(4)


class MpyError(ValueError):
    """Not a .mpy file this reader knows."""


@dataclass(frozen=True)
class Function:
    kind: str  # "native", "viper", "asm"
    code_bytes: int

    @property
    def committed_bytes(self) -> int:
        """What the port allocates in IRAM for it."""
        return (self.code_bytes + 3) // 4 * 4 + NODE_BYTES + BLOCK_HEADER_BYTES


@dataclass(frozen=True)
class ModuleCode:
    path: str
    functions: tuple[Function, ...]

    @property
    def committed_bytes(self) -> int:
        return sum(f.committed_bytes for f in self.functions)


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.b = data
        self.i = 0
        self.path = path

    def byte(self) -> int:
        if self.i >= len(self.b):
            raise MpyError(f"{self.path}: ends early")
        v = self.b[self.i]
        self.i += 1
        return v

    def uint(self) -> int:
        n = 0
        while True:
            x = self.byte()
            n = (n << 7) | (x & 0x7F)
            if not x & 0x80:
                return n

    def skip(self, n: int) -> None:
        self.i += n


def _obj(r: _Reader) -> None:
    kind = r.byte()
    if kind <= 4:  # fun table, None, False, True, Ellipsis
        return
    n = r.uint()
    if kind == 10:  # tuple
        for _ in range(n):
            _obj(r)
        return
    r.skip(n + (1 if kind in (5, 6) else 0))  # str and bytes end with a NUL


def _raw_code(r: _Reader, out: list[Function]) -> None:
    kind_len = r.uint()
    kind, has_children, length = kind_len & 3, kind_len & 4, kind_len >> 3
    r.skip(length)
    if kind == _NATIVE:
        r.uint()  # prelude offset
    elif kind in (_VIPER, _ASM):
        flags = r.uint()
        if kind == _ASM:
            r.uint()
            r.uint()
        else:
            rodata = r.uint() if flags & 0x20 else 0  # MP_SCOPE_FLAG_VIPERRODATA
            if flags & 0x40:  # MP_SCOPE_FLAG_VIPERBSS
                r.uint()
            r.skip(rodata)
    if kind != _BYTECODE:
        out.append(Function(("", "native", "viper", "asm")[kind], length))
    if has_children:
        for _ in range(r.uint()):
            _raw_code(r, out)


def read_module(data: bytes, path: str = "<mpy>") -> ModuleCode:
    """The native functions of one .mpy file."""
    r = _Reader(data, path)
    if len(data) < 4 or data[0] != ord("M") or data[1] != 6:
        raise MpyError(f"{path}: not a .mpy of format 6")
    r.skip(4)
    if data[2] & 0x40:  # MPY_FEATURE_ARCH_FLAGS: one more varint
        r.uint()
    n_qstr, n_obj = r.uint(), r.uint()
    for _ in range(n_qstr):
        n = r.uint()
        if not n & 1:  # a static qstr is its index; else the text and its NUL
            r.skip((n >> 1) + 1)
    for _ in range(n_obj):
        _obj(r)
    out: list[Function] = []
    _raw_code(r, out)
    if r.i != len(data):
        raise MpyError(f"{path}: {len(data) - r.i} bytes after the module's code")
    return ModuleCode(path, tuple(out))


# py/objfun.c: a bytecode call keeps its frame on the C stack up to this
# size, and beyond it takes it from the GC heap (m_new_obj_var_maybe; under
# heap_lock that fails silently and it falls back to the stack). On the
# ESP32 (32-bit words) that is 44 bytes: a frame of n_state words and the
# exception stack's entries (mp_exc_stack_t: three words each).
STATE_ON_STACK_BYTES = 11 * 4
_EXC_ENTRY_BYTES = 3 * 4


def frame_bytes(data: bytes) -> list[int]:
    """The frame, in bytes on a 32-bit port, of each bytecode function at a
    .mpy's top level, from its prelude's signature (py/bc.h,
    MP_BC_PRELUDE_SIG_DECODE_INTO: n_state and n_exc_stack)."""
    r = _Reader(data, "<mpy>")
    r.skip(4)
    if data[2] & 0x40:
        r.uint()
    n_qstr, n_obj = r.uint(), r.uint()
    for _ in range(n_qstr):
        n = r.uint()
        if not n & 1:
            r.skip((n >> 1) + 1)
    for _ in range(n_obj):
        _obj(r)
    kind_len = r.uint()  # the module's own code, then its children
    r.skip(kind_len >> 3)
    out: list[int] = []
    if kind_len & 4:
        for _ in range(r.uint()):
            start = r.i
            child: list[Function] = []
            _raw_code(r, child)
            body = _Reader(data, "<mpy>")
            body.i = start
            child_kind = body.uint() & 3
            if child_kind == _BYTECODE:
                out.append(_sig_frame_bytes(data, body.i))
    return out


def _sig_frame_bytes(data: bytes, i: int) -> int:
    z = data[i]
    n_state, n_exc = (z >> 3) & 0xF, (z >> 2) & 1
    n = 0
    while z & 0x80:
        i += 1
        z = data[i]
        n_state |= (z & 0x30) << (2 * n)
        n_exc |= (z & 0x02) << n
        n += 1
    return (n_state + 1) * 4 + n_exc * _EXC_ENTRY_BYTES


def read_tree(root: Path) -> list[ModuleCode]:
    """Every .mpy under root that has native code, by path."""
    paths = sorted(root.rglob("*.mpy"))
    mods = [read_module(p.read_bytes(), p.relative_to(root).as_posix()) for p in paths]
    return [m for m in mods if m.functions]


@dataclass(frozen=True)
class BudgetReport:
    modules: list[ModuleCode]
    budget_bytes: int = BUDGET_BYTES

    @property
    def committed_bytes(self) -> int:
        return sum(m.committed_bytes for m in self.modules)

    @property
    def fits(self) -> bool:
        return self.committed_bytes <= self.budget_bytes

    def summary(self) -> str:
        n = sum(len(m.functions) for m in self.modules)
        return (
            f"native code for the ESP32's IRAM: {self.committed_bytes} bytes in {n} functions, "
            f"budget {self.budget_bytes} ({self.budget_bytes - self.committed_bytes} to spare)"
        )

    def biggest(self, k: int = 5) -> str:
        top = sorted(self.modules, key=lambda m: -m.committed_bytes)[:k]
        return ", ".join(f"{m.path} {m.committed_bytes}" for m in top)
