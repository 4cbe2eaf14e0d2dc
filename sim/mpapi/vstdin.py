"""The ESP32's console input: a 260-byte ring.

On the ESP32 the REPL UART's interrupt puts every byte it receives into
stdin_ringbuf, 260 bytes (ports/esp32/mphalport.c; uart.c: uart_irq_handler),
and a byte that finds the ring full is dropped (py/ringbuf.h: ringbuf_put
keeps one slot free, so 259 bytes fit). The firmware empties the ring once
per main-loop pass: whatever arrives in one pass beyond 259 bytes is lost.

The simulator's stdin is a pipe that holds everything. This module stands
between it and the firmware's console: at the console's first poll after a
sleep (a new main-loop pass) what arrived since goes into the ring, the
excess is dropped and counted (`lost`). The console module's names `sys`
and `select` point here (sim/run.py), since the built-in `sys` cannot be
shadowed in MicroPython; everything else keeps the real ones.

Bytes arrive in the simulator with no air time: a pass sees everything the
host sent before it, which on a board would have trickled in at the baud
rate -- the ring is never emptier here than there.
"""

import select as _select
import sys as _sys

from sim.mpapi import vtime

RING = 260
_CAP = RING - 1

POLLIN = _select.POLLIN
POLLHUP = _select.POLLHUP
POLLERR = _select.POLLERR
stdout = _sys.stdout

_ring = bytearray(RING)
_get = 0
_put = 0
_naps = -1  # vtime.naps at the last fill
_eof = False
lost = 0  # bytes dropped on a full ring, since the start
_real = None  # a poll object on the real stdin, made at the first fill
_byte = bytearray(1)


def _fill():
    """Move what the pipe holds into the ring (once per main-loop pass),
    without garbage of its own on the firmware's heap: ipoll() reuses its
    tuple, and each byte comes through one preallocated buffer."""
    global _put, _naps, _eof, lost, _real
    if _naps == vtime.naps or _eof:
        return
    _naps = vtime.naps
    if _real is None:
        _real = _select.poll()
        _real.register(_sys.stdin, _select.POLLIN)
    src = _sys.stdin.buffer
    while True:
        ev = 0
        for _obj, e in _real.ipoll(0):
            ev = e
        if not ev:
            return
        if not ev & _select.POLLIN or not src.readinto(_byte):
            _eof = True
            return
        nxt = _put + 1 if _put + 1 < RING else 0
        if nxt == _get:
            lost += 1  # ringbuf_put: full
        else:
            _ring[_put] = _byte[0]
            _put = nxt


_ONE = tuple(bytes((i,)) for i in range(256))  # read(1), the console's, allocates nothing here


class _Stdin:
    """sys.stdin and sys.stdin.buffer as the console uses them. The reads
    allocate what the port's do (the bytes returned) and no more: the
    simulator's own garbage would fragment the firmware's heap."""

    def read(self, n=-1):
        global _get
        avail = _put - _get if _put >= _get else _put + RING - _get
        if 0 <= n < avail:
            avail = n
        if not avail:
            return b""
        g = _get
        _get = g + avail if g + avail < RING else g + avail - RING
        if avail == 1:
            return _ONE[_ring[g]]
        if g + avail <= RING:
            return bytes(memoryview(_ring)[g : g + avail])
        return bytes(memoryview(_ring)[g:]) + bytes(memoryview(_ring)[: _get])


stdin = _Stdin()
stdin.buffer = stdin


class _Poll:
    def register(self, obj, flags=POLLIN):
        pass

    def unregister(self, obj):
        pass

    def poll(self, timeout=-1):
        _fill()
        if _get != _put:
            return [(stdin, POLLIN)]
        if _eof:
            return [(stdin, POLLHUP)]
        return []


def poll():
    return _Poll()


def install(console):
    """The console's stdin through the ring (its module's `sys` and `select`)."""
    global _real
    _real = _select.poll()  # made now: nothing of the simulator's on the firmware's heap later
    _real.register(_sys.stdin, _select.POLLIN)
    console.sys = _sys.modules[__name__]
    console.select = console.sys
