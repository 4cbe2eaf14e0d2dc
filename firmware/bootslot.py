"""The bootstrap's choice of firmware: two slots on flash, a trial boot and
its rollback (docs/update.md).

The firmware lives in one of two slot folders, fw_a and fw_b, or, before
any update, where it was deployed (the flash's root; the simulator's module
path): slot "". The boot record -- two copies, boot.a and boot.b, in the
store's format (store.py), the newer valid one counts -- names the active
slot. An update writes the other slot, verifies it, and makes it active by
one write of this record (switch()); the next boot runs it on trial:

    trial 1   switched, not booted yet: this boot marks it 2 and runs it
    trial 2   booted on trial and never confirmed: a reset, a watchdog or a
              power cut came first -- this boot goes back to the previous slot
    trial 0   confirmed (confirm(), after the new firmware's self-checks)

An exception out of the firmware, or no confirmation within TRIAL_MS,
rolls back at once (fail()). main.py, this module and boot_hold.py are the
bootstrap: they stay where they were deployed, and no update replaces them.
Code that imports firmware modules before main.py (the simulator's, a
board's boot.py) calls select() first, so that they come from the slot.
"""

import json
import os
import struct
import sys
from binascii import crc32

from micropython import const

TRIAL_MS = const(120000)  # a trial boot confirms itself within this, or rolls back
_TRIAL_TIMER = const(1)  # machine.Timer id of the trial's deadline
_MAGIC = b"HRS1"  # the store's record format (store.py)
_HDR = "<4sIIH"
_HDR_LEN = const(14)
NAME = "boot"
DIR = "fw_"  # slot s lives in fw_s/
MANIFEST = "manifest.json"  # in a slot: the image's manifest, written last
DEFAULTS = {"slot": "", "prev": "", "trial": 0, "ver": "", "pver": "", "why": "", "from": "", "told": True}

WHY_NAMES = ("", "reset", "exception", "timeout", "selfcheck", "missing")  # a rollback's reasons
running = None  # the slot this boot runs ("" the deployed firmware), once select() chose
trial = False  # this boot runs a new slot on trial
rolled_back = ""  # why this boot went back to the previous slot ("" it did not)
_rec = None
_seq = [0, "b"]  # type: list  # the newest copy's seq and file
_timer = None


def _read(path):
    try:
        with open(path, "rb") as f:
            hdr = f.read(_HDR_LEN)
            if len(hdr) < _HDR_LEN:
                return None
            magic, crc, seq, n = struct.unpack(_HDR, hdr)
            body = f.read(n + 1) if magic == _MAGIC and n <= 1024 else b""
    except OSError:
        return None
    if len(body) != n or crc32(body, crc32(memoryview(hdr)[8:])) != crc:
        return None
    try:
        rec = json.loads(body)
    except ValueError:
        return None
    return (seq, rec) if isinstance(rec, dict) else None


def load():
    """The boot record (a copy of DEFAULTS if there is none)."""
    best = None
    for s in "ab":
        got = _read(NAME + "." + s)
        if got and (best is None or got[0] > best[0]):
            best = got
            _seq[1] = s
    rec = dict(DEFAULTS)
    if best:
        _seq[0] = best[0]
        for k in DEFAULTS:
            v = best[1].get(k)
            if type(v) is type(DEFAULTS[k]):
                rec[k] = v
    return rec


def save(rec):
    """One write of the other copy: after a cut at any byte the record is
    the previous one or this one, whole."""
    seq = _seq[0] + 1
    slot = "a" if _seq[1] == "b" else "b"
    body = json.dumps(rec).encode()
    n = len(body)
    with open(NAME + "." + slot, "wb") as f:
        f.write(struct.pack(_HDR, _MAGIC, crc32(body, crc32(struct.pack("<IH", seq, n))), seq, n) + body)
    _seq[0] = seq
    _seq[1] = slot


def slot_dir(slot):
    return DIR + slot


def _complete(slot):
    try:
        os.stat(slot_dir(slot) + "/" + MANIFEST)
        return True
    except OSError:
        return False


def select():
    """Choose this boot's slot (once per boot) and put it first on sys.path."""
    global running, trial, rolled_back, _rec
    if running is not None:
        return running
    rec = load()
    if rec["trial"] >= 2:
        _back(rec, "reset")
    elif rec["trial"] == 1:
        rec["trial"] = 2
        save(rec)
        trial = True
    if rec["slot"] and not _complete(rec["slot"]):
        _back(rec, "missing")
        trial = False
    if not rec["told"]:  # a rollback, this boot or the last: reported once (app.py)
        rolled_back = rec["why"]
        rec["told"] = True
        save(rec)
    running = rec["slot"]
    _rec = rec
    if running:
        sys.path.insert(0, slot_dir(running))
    return running


def _back(rec, why):
    rec["from"] = rec["ver"]
    rec["ver"] = rec["pver"]
    rec["slot"] = rec["prev"] if rec["slot"] != rec["prev"] and _complete_or_root(rec["prev"]) else ""
    rec["trial"] = 0
    rec["why"] = why
    rec["told"] = False
    save(rec)


def _complete_or_root(slot):
    return not slot or _complete(slot)


def why_code():
    """The last rollback's reason as an index of WHY_NAMES (0: none since the last switch)."""
    why = record()["why"]
    return WHY_NAMES.index(why) if why in WHY_NAMES else 0


def record():
    """The boot record as this boot left it."""
    return _rec if _rec is not None else load()


def switch(slot, version, running_version):
    """Make `slot` (written and verified) the active one: one write. It boots
    on trial at the next reset; the slot running now stays the way back."""
    global _rec
    _rec = {"slot": slot, "prev": running or "", "trial": 1, "ver": version, "pver": running_version,
            "why": "", "from": "", "told": True}  # fmt: skip
    save(_rec)


def confirm():
    """The new firmware passed its self-checks: it stays."""
    global trial, _timer
    if not trial:
        return
    rec = record()
    rec["trial"] = 0
    save(rec)
    trial = False
    if _timer is not None:
        _timer.deinit()
        _timer = None


def fail(why):
    """The trial failed: back to the previous slot, through a reset."""
    import machine

    if trial:
        _back(record(), why)
    machine.reset()


def _deadline(_t):
    if trial:
        fail("timeout")


def run():
    """Boot: choose the slot, start its firmware; on trial, with a deadline
    and a rollback if it raises."""
    global _timer
    select()
    if trial:
        from machine import Timer

        _timer = Timer(_TRIAL_TIMER)
        _timer.init(mode=Timer.ONE_SHOT, period=TRIAL_MS, callback=_deadline)
    try:
        import app

        app.main()
    except Exception as e:
        if trial:
            sys.print_exception(e)
            fail("exception")
        raise
