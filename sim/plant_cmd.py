"""The "@plant" console channel: the host drives the simulated plant (and, in
host-stepped runs, the virtual clock) over the same link as the firmware's
console, kept apart from it: the firmware's console only routes the line
here (console.register_channel), and the replies are plant frames (0x12).

    @plant run US            host-stepped: let the clock run US further
    @plant at                the virtual time
    @plant puff ML S [square]
    @plant stick 0|1         @plant button 0|1
    @plant ambient C         @plant cell_temp C        @plant cell_soc PCT
    @plant charger_temp C    @plant charger_soc PCT
    @plant fault KIND [CHANNEL UV]
    @plant usb 0|1 [LIMIT_A] @plant dock 0|1           @plant charger_button 0|1
    @plant truth US          truth sample period; 0 stops the samples
    @plant latency JITTER_US STALL_US EVERY [SEED]     timer latency; 0 0 0 stops it
    @plant noise N SEED      N random bytes on the link (tests the host's resync)
    @plant cut               a telemetry frame cut short
    @plant line N            a line of N text bytes
    @plant end               end the run

Inputs take effect at the instant the firmware's main loop reads the line.
"""

import sys

import framing

from sim import inject
from sim.kernel import K, SimEnd
from sim.mpapi.latency import TimerLatency

E_UNKNOWN = 1
E_ARGS = 2
E_STATE = 3


class PlantError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _reply(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_PLANT_REPLY, text))


def _num(words, i, lo, hi):
    if len(words) <= i:
        raise PlantError(E_ARGS, "missing argument %d" % (i + 1))
    try:
        v = float(words[i])
    except ValueError:
        raise PlantError(E_ARGS, "not a number: " + words[i])
    if not lo <= v <= hi:
        raise PlantError(E_ARGS, "%s out of range %g..%g" % (words[i], lo, hi))
    return v


def _flag(words):
    if len(words) != 1 or words[0] not in ("0", "1"):
        raise PlantError(E_ARGS, "expects 0 or 1")
    return words[0] == "1"


class PlantChannel:
    def __init__(self, plant, recorder, clock, host_stepped):
        self.plant = plant
        self.rec = recorder
        self.clock = clock  # the kernel K, or a real-time clock (sim/mpapi/rtmachine.py)
        self.host_stepped = host_stepped
        self.sync = getattr(clock, "sync", None)  # real time: integrate up to now first
        self.cmds = {
            "run": self._run,
            "at": self._at,
            "puff": self._puff,
            "stick": self._stick,
            "button": self._button,
            "ambient": self._ambient,
            "cell_temp": self._cell_temp,
            "cell_soc": self._cell_soc,
            "charger_temp": self._charger_temp,
            "charger_soc": self._charger_soc,
            "fault": self._fault,
            "usb": self._usb,
            "dock": self._dock,
            "charger_button": self._charger_button,
            "truth": self._truth,
            "latency": self._latency,
            "noise": self._noise,
            "cut": self._cut,
            "line": self._line,
            "end": self._end,
        }

    def __call__(self, words):
        fn = self.cmds.get(words[0]) if words else None
        if fn is None:
            _reply("ERR %d unknown plant command %s" % (E_UNKNOWN, words[0] if words else "(none)"))
            return
        if self.sync is not None:
            self.sync()
        try:
            text = fn(words[1:])
        except PlantError as e:
            _reply("ERR %d %s: %s" % (e.code, words[0], e))
            return
        except (ValueError, KeyError, IndexError, TypeError) as e:
            _reply("ERR %d %s: %s" % (E_ARGS, words[0], e))
            return
        if text is not None:
            _reply("OK " + text)

    def _run(self, w):
        if not self.host_stepped:
            raise PlantError(E_STATE, "this run's clock is not host-stepped")
        us = int(_num(w, 0, 0, 86400e6))
        K.grant(us)
        return "run until t_us=%d" % K.horizon_us

    def _at(self, w):
        return "t_us=%d" % self.clock.now_us

    def _puff(self, w):
        ml = _num(w, 0, 1, 200)
        s = _num(w, 1, 0.1, 10)
        square = len(w) > 2 and w[2] == "square"
        self.plant.ev_puff((ml, s, not square))
        return "puff %g ml %g s" % (ml, s)

    def _stick(self, w):
        self.plant.ev_stick(_flag(w))
        return "stick " + w[0]

    def _button(self, w):
        self.plant.ev_button(_flag(w))
        return "button " + w[0]

    def _ambient(self, w):
        inject.ambient(self.plant, _num(w, 0, -40, 120))
        return "ambient " + w[0]

    def _cell_temp(self, w):
        inject.cell_temp(self.plant, _num(w, 0, -40, 120))
        return "cell_temp " + w[0]

    def _cell_soc(self, w):
        inject.cell_soc(self.plant, _num(w, 0, 0, 100) / 100)
        return "cell_soc " + w[0]

    def _charger_temp(self, w):
        inject.charger_temp(self.plant, _num(w, 0, -40, 120))
        return "charger_temp " + w[0]

    def _charger_soc(self, w):
        inject.charger_soc(self.plant, _num(w, 0, 0, 100) / 100)
        return "charger_soc " + w[0]

    def _fault(self, w):
        if not w:
            raise PlantError(E_ARGS, "usage: fault KIND [CHANNEL UV]")
        arg = None
        if w[0] == "adc_stuck":
            if len(w) != 3:
                raise PlantError(E_ARGS, "usage: fault adc_stuck CHANNEL UV")
            arg = [w[1], int(_num(w, 2, 0, 3300000))]
        inject.fault(self.plant, (w[0], arg))
        return "fault " + " ".join(w)

    def _usb(self, w):
        limit_a = _num(w, 1, 0.1, 5) if len(w) > 1 else 0
        self.plant.ev_usb((_flag(w[:1]), limit_a))
        return "usb " + " ".join(w)

    def _dock(self, w):
        self.plant.ev_dock(_flag(w))
        return "dock " + w[0]

    def _charger_button(self, w):
        self.plant.ev_charger_button(_flag(w))
        return "charger_button " + w[0]

    def _truth(self, w):
        us = int(_num(w, 0, 0, 10e6))
        if 0 < us < 1000:
            raise PlantError(E_ARGS, "period below 1000 us")
        self.clock.set_sampler(self.rec.sample, us)
        return "truth %d" % us

    def _latency(self, w):
        if self.clock is not K:
            raise PlantError(E_STATE, "real time: the board's own timer latency applies")
        jitter = int(_num(w, 0, 0, 16000))
        stall = int(_num(w, 1, 0, 16000))
        every = int(_num(w, 2, 0, 65535))
        seed = int(_num(w, 3, 1, 65535)) if len(w) > 3 else 1
        K.timer_latency = TimerLatency(jitter, stall, every, seed) if jitter or every else None
        return "latency %d %d %d" % (jitter, stall, every)

    def _noise(self, w):
        n = int(_num(w, 0, 1, 65536))
        x = int(_num(w, 1, 1, 65535))
        buf = bytearray(256)  # in pieces: the heap is small
        left = n
        while left:
            k = min(left, 256)
            for i in range(k):
                x ^= (x << 7) & 0xFFFF
                x ^= x >> 9
                x ^= (x << 8) & 0xFFFF
                buf[i] = x & 0xFF
            sys.stdout.buffer.write(buf[:k])
            left -= k
        return "noise %d" % n

    def _cut(self, w):
        buf = bytearray(30)
        framing.seal(buf, 0, framing.T_TELEMETRY, 25)
        sys.stdout.buffer.write(buf[:17])  # header and part of the payload, no CRC
        return "cut"

    def _line(self, w):
        n = int(_num(w, 0, 1, 65536))
        chunk = b"x" * 256
        left = n
        while left:
            k = min(left, 256)
            sys.stdout.buffer.write(chunk[:k])
            left -= k
        sys.stdout.buffer.write(b"\n")
        return "line %d" % n

    def _end(self, w):
        _reply("OK end")
        raise SimEnd("host_end")
