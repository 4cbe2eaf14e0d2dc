# MicroPython, run by tests/update/harness.py in the unix port with the
# firmware's and the simulator's modules on its path and the working
# directory as the device's flash (behind sim/mpapi/vflash.py, which cuts the
# power at a chosen byte). It drives the firmware's own update code
# (firmware/update.py, bootslot.py) as the main loop would, without the rest
# of the firmware, and "reboots" by dropping the firmware's modules: RAM is
# gone, the flash stays. The host prepends CFG = {...}; one JSON line out.
import json
import os
import sys
from binascii import hexlify
from hashlib import sha256

from sim.kernel import SimEnd
from sim.mpapi import (
    vflash,
    vmachine,
)

sys.modules["machine"] = vmachine
FS = vflash.mount(CFG["flash"])  # noqa: F821  the host's
BASE_PATH = list(sys.path)
KEEP = ("json", "os", "sys", "micropython", "framing", "board", "attr_map", "machine")
EVENTS = []


class Heater:
    def __init__(self):
        self.state = 0
        self.cut = False

    def cut_for_reset(self):
        self.cut = True


class Console:
    def event(self, text):
        EVENTS.append(text)


class App:
    def __init__(self):
        self.heater = Heater()
        self.console = Console()
        self.upd = None

    def reset(self, hold=False):
        raise SimEnd("machine_reset")


def boot():
    """A new boot: the firmware's modules loaded afresh, the slot chosen."""
    for name in list(sys.modules):
        if not name.startswith("sim") and name not in KEEP:
            del sys.modules[name]
    sys.path[:] = BASE_PATH
    import bootslot

    bootslot.select()
    return bootslot


def slot_ok(slot):
    """The slot's every file as its manifest says (the deployed firmware: "")."""
    if not slot:
        return True
    d = "fw_" + slot + "/"
    try:
        with open(d + "manifest.json") as f:
            man = json.loads(f.read())
    except (OSError, ValueError):
        return False
    for name, size, want in man["files"]:
        try:
            with open(d + name, "rb") as f:
                data = f.read()
        except OSError:
            return False
        if len(data) != size or hexlify(sha256(data).digest()).decode() != want:
            return False
    return True


def records():
    """Every file at the flash's root but the boot record, the slots and the
    update's scratch file: settings, calibration, counters, bonds, keys, ..."""
    out = {}
    for name in os.listdir("."):
        if name.startswith("boot.") or name.startswith("fw_") or name in ("run.json", "update.tmp"):
            continue
        with open(name, "rb") as f:
            out[name] = hexlify(sha256(f.read()).digest()).decode()
    return out


def boot_record_only():
    """The boot record on flash, read without choosing a slot (no boot)."""
    for name in list(sys.modules):
        if name == "bootslot":
            del sys.modules[name]
    import bootslot

    return bootslot.load()


def read_image(path):
    with open(path, "rb") as f:
        return f.read()


def transfer(app, image, image_id, block_cb=None, busy_at=-1):
    """The whole image through the protocol, as a client would send it; the
    session's final (state, code)."""
    import update

    s = update.open_session(app)
    code = s.begin(len(image), image_id, 0)
    if code:
        return "begin", update.CODE_NAMES[code]
    while True:
        st, _code, off, _total, w, chunk = s.status()
        if st != update.RECEIVING:
            break
        if off == busy_at:
            busy_at = -1
            app.heater.state = 2  # a session starts: the update pauses
            s.service(0)
            st2 = s.status()[0]
            app.heater.state = 0
            if st2 != update.PAUSED:
                return "pause", "not paused"
        for i in range(0, w, chunk):
            s.feed(off + i, image[off + i : off + min(w, i + chunk)])
        s.service(0)
    return update.STATE_NAMES[s.state], update.CODE_NAMES[s.code]


def commit(app):
    import update

    s = update.current()
    return s.commit()


def run_boot_until_trial_done(outcome):
    """After a switch: boot (select marks the trial), then the firmware
    confirms (outcome "confirm") or fails its checks (outcome a reason)."""
    b = boot()
    if not b.trial:
        return b.running
    if outcome == "confirm":
        b.confirm()
    else:
        try:
            b.fail(outcome)
        except SimEnd:  # the reset it asks for
            return b.running
    return b.running


exec(CFG["script"])  # noqa: F821  the host's: what this run does, then print(json.dumps(...))
