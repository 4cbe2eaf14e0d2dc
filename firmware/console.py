"""Engineering console on sys.stdin / sys.stdout (the USB serial of the ESP32,
the pipes of the simulator).

Input is text lines; output is framed (framing.py): replies and events as
text frames, telemetry as binary frames. Every command gets exactly one
reply, "OK ..." or "ERR <code> <message>". A bad line changes nothing, and
the console keeps serving whatever arrives: Ctrl-C is off while it runs (the
link is binary), `reset repl` is the way back to the MicroPython REPL.
See docs/console_protocol.md.
"""

import select
import sys

import calib
import faults
import framing
import micropython
import profiles
import settings
import states
from micropython import const
from version import FIRMWARE_VERSION, PROTOCOL_VERSION

MAX_LINE = const(120)

# error codes
E_UNKNOWN = const(1)
E_ARGS = const(2)
E_STATE = const(3)
E_TOO_LONG = const(4)
E_RANGE = const(5)
E_ENCODING = const(6)
E_STORAGE = const(7)

# out-of-band channels: name -> handler(words), for console lines "@name ...".
# The firmware registers none; the simulated plant registers "plant" on
# boards without heater hardware. A handler sends its own reply.
_channels: dict = {}

# commands that take no arguments: anything after them is an error (ERR 2)
_NO_ARGS = ("ver", "status", "start", "stop", "clear", "settings")


def register_channel(name, handler):
    _channels[name] = handler


def _int(word):
    try:
        return int(word)
    except ValueError:
        raise ValueError("not an integer: " + word)


class Console:
    def __init__(self, app):
        self.app = app
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._open = True
        self._line = bytearray(MAX_LINE)
        self._n = 0
        self._overflow = False
        micropython.kbd_intr(-1)  # a 0x03 on the link is data, not KeyboardInterrupt
        self.commands = {
            "ver": self._cmd_ver,
            "status": self._cmd_status,
            "tm": self._cmd_tm,
            "start": self._cmd_start,
            "stop": self._cmd_stop,
            "clear": self._cmd_clear,
            "faults": self._cmd_faults,
            "profile": self._cmd_profile,
            "settings": self._cmd_settings,
            "set": self._cmd_set,
            "cal": self._cmd_cal,
            "reset": self._cmd_reset,
            "update": self._cmd_update,
        }

    # --- output ------------------------------------------------------------
    def send(self, ftype, text):
        self._out.write(framing.text_frame(ftype, text))

    def event(self, text):
        self.send(framing.T_EVENT, text)

    def reply(self, text):
        self.send(framing.T_REPLY, text)

    def error(self, code, msg):
        self.reply("ERR %d %s" % (code, msg))

    # --- input -------------------------------------------------------------
    def poll(self):
        """Read whatever input is waiting and run complete lines. Never blocks."""
        while self._open:
            ev = self._poll.poll(0)
            if not ev:
                return
            if ev[0][1] & (select.POLLHUP | select.POLLERR) and not ev[0][1] & select.POLLIN:
                self._close()
                return
            b = self._in.read(1)
            if not b:
                self._close()
                return
            self._byte(b[0])

    def _close(self):
        self._open = False
        self._poll.unregister(sys.stdin)

    def _byte(self, c):
        if c == 10 or c == 13:  # LF or CR ends a line
            if self._overflow:
                self._overflow = False
                self.error(E_TOO_LONG, "line longer than %d bytes" % MAX_LINE)
            elif self._n:
                self._run(bytes(self._line[: self._n]))
            self._n = 0
        elif self._overflow:
            pass
        elif self._n >= MAX_LINE:
            self._overflow = True
        else:
            self._line[self._n] = c
            self._n += 1

    def _run(self, raw):
        try:
            text = raw.decode()
        except UnicodeError:
            self.error(E_ENCODING, "not UTF-8")
            return
        words = text.split()
        if not words:
            return
        name = words[0]
        if name.startswith("@"):
            handler = _channels.get(name[1:])
            if handler is None:
                self.error(E_UNKNOWN, "no channel " + name)
                return
            cmd = handler
        else:
            cmd = self.commands.get(name)
            if cmd is None:
                self.error(E_UNKNOWN, "unknown command " + name)
                return
            if len(words) > 1 and name in _NO_ARGS:
                self.error(E_ARGS, "usage: " + name)
                return
        try:
            cmd(words[1:])
        except OSError as e:  # flash full or failing: nothing was changed
            self.error(E_STORAGE, "%s: storage: %s" % (name, e))
        except Exception as e:  # a command must never take the console down
            self.error(E_ARGS, "%s: %s" % (name, e))

    def _idle(self):
        """True if the heater is off and no session runs (else an error reply)."""
        if self.app.heater.state in (states.SLEEP, states.COOLING, states.FAULT):
            return True
        self.error(E_STATE, "not while heating")
        return False

    # --- commands ------------------------------------------------------------
    def _cmd_ver(self, args):
        self.reply("OK heatrig %s protocol %d" % (FIRMWARE_VERSION, PROTOCOL_VERSION))

    def _cmd_status(self, args):
        h = self.app.heater
        self.reply(
            "OK state=%s fault=%s puffs=%d temp_c=%d.%d cell_mv=%d profile=%s end=%s tm=%d"
            % (
                states.NAMES[h.state],
                faults.NAMES[h.fault],
                h.puff_count,
                h.temp_dc // 10,
                h.temp_dc % 10,
                h.cell_mv,
                h.profile.name,
                states.END_NAMES[h.end_reason],
                self.app.tele.enabled,
            )
        )

    def _cmd_tm(self, args):
        if len(args) != 1 or args[0] not in ("on", "off"):
            self.error(E_ARGS, "usage: tm on|off")
            return
        self.app.tele.enabled = args[0] == "on"
        self.reply("OK tm " + args[0])

    def _cmd_start(self, args):
        if self.app.heater.state not in (states.SLEEP, states.COOLING):
            self.error(E_STATE, "not idle")
            return
        self.app.heater.request_start()
        self.reply("OK start requested")

    def _cmd_stop(self, args):
        self.app.heater.request_stop()
        self.reply("OK stop requested")

    def _cmd_clear(self, args):
        self.app.heater.request_clear_fault()
        self.reply("OK clear requested")

    def _cmd_faults(self, args):
        if args == ["clear"]:
            self.app.fault_log.clear()
            self.reply("OK faults cleared")
            return
        if args:
            self.error(E_ARGS, "usage: faults [clear]")
            return
        parts = ["%s@%d:%d" % (faults.NAMES[c], t, d) for c, t, d in self.app.fault_log.entries()]
        self.reply("OK " + " ".join(parts))

    def _cmd_profile(self, args):
        if len(args) > 1:
            self.error(E_ARGS, "usage: profile [NAME]")
            return
        if not args:
            self.reply("OK %s of %s" % (self.app.heater.profile.name, ",".join(profiles.names())))
            return
        self._set_profile(args[0])

    def _set_profile(self, name):
        if name not in profiles.PROFILES:
            self.error(E_RANGE, "unknown profile " + name)
            return
        if self.app.heater.state != states.SLEEP:
            self.error(E_STATE, "not while heating")
            return
        self.app.select_profile(name)
        self.reply("OK profile " + name)

    def _cmd_settings(self, args):
        s = self.app.settings
        self.reply("OK profile=%s telemetry=%d" % (s["profile"], s["telemetry"]))

    def _cmd_set(self, args):
        if len(args) != 2:
            self.error(E_ARGS, "usage: set profile NAME | set telemetry 0|1 | set ble 0|1")
            return
        key, value = args
        if key == "profile":
            self._set_profile(value)
        elif key == "telemetry":
            if value not in ("0", "1"):
                self.error(E_RANGE, "telemetry: 0 or 1")
                return
            self.app.set_telemetry_at_boot(value == "1")
            self.reply("OK telemetry " + value)
        elif key == "ble":
            if value not in ("0", "1"):
                self.error(E_RANGE, "ble: 0 or 1")
                return
            self.app.settings["ble"] = value == "1"
            settings.save(self.app.settings)
            self.reply("OK ble %s from the next boot" % value)
        else:
            self.error(E_ARGS, "unknown setting " + key)

    def _cmd_cal(self, args):
        if not args:
            c = self.app.cal
            self.reply("OK r0_uohm=%d tcr_ppm=%d stored=%d" % (c.r0_uohm, c.tcr_ppm, c.stored))
            return
        if len(args) != 2:
            self.error(E_ARGS, "usage: cal [R0_UOHM TCR_PPM]")
            return
        r0, tcr = _int(args[0]), _int(args[1])
        if not calib.valid(r0, tcr):
            self.error(E_RANGE, "implausible calibration")
            return
        if not self._idle():
            return
        self.app.set_calibration(r0, tcr)
        self.reply("OK cal r0_uohm=%d tcr_ppm=%d" % (r0, tcr))

    def _cmd_update(self, args):
        import update_cmd  # the update's code is loaded when an update starts

        update_cmd.command(self, args)

    def _cmd_reset(self, args):
        if args and args != ["repl"]:
            self.error(E_ARGS, "usage: reset [repl]")
            return
        self.reply("OK reset" + (" to the REPL" if args else ""))
        self.app.reset(bool(args))
