"""BLE bonds, kept on flash for the BLE stack.

The stack stores and loads its secrets through the bluetooth module's
_IRQ_SET_SECRET / _IRQ_GET_SECRET (ble_gatt.py): opaque blobs, each a
(sec_type, key, value), the key naming the peer. They are kept here, oldest
first, as [sec_type, key, value] with key and value in base64, in one store
record (store.py: safe against a power cut at any byte). At most MAX_BONDS
peers (distinct keys): a new peer beyond that drops the oldest one's secrets.

Changes are made in RAM, where the stack reads them at once, and reach flash
when save() is called: from the main loop, never from the BLE interrupt. The
stack's own deletes (NimBLE deletes a peer's keys before it pairs with it
again) only hide the peer's keys (hide(); resume() shows them again): a bond
is replaced by the new one the firmware accepts, or removed by clear().
"""

from binascii import a2b_base64, b2a_base64

import store
from micropython import const

FILE = "bonds"
MAX_BONDS = const(12)
MAX_KEY = const(16)
MAX_VALUE = const(128)  # NimBLE's security record is 88 bytes (esp-nimble, on the ESP32)


def _b64(b):
    return b2a_base64(b, newline=False).decode()


def load():
    """The stored secrets, oldest first, as [sec_type, key, value] (bytes)."""
    rec, _ = store.load(FILE, {"bonds": []})
    out = []
    for e in rec["bonds"]:
        if isinstance(e, list) and len(e) == 3 and type(e[0]) is int and type(e[1]) is str and type(e[2]) is str:
            try:
                out.append([e[0], a2b_base64(e[1]), a2b_base64(e[2])])
            except ValueError:
                store.problems.append(FILE + ": bad entry")
    return out


def save(entries):
    store.save(FILE, {"bonds": [[e[0], _b64(e[1]), _b64(e[2])] for e in entries]})


class Bonds:
    """The secrets in RAM, as the stack asks for them; saved by save()."""

    def __init__(self):
        self.entries = load()
        self.hidden = []  # keys whose secrets the stack deleted: kept, not shown
        self.dirty = False  # changed since the last save()

    def get(self, sec_type, index, key):
        """The value of (sec_type, key); with key None, the index'th value of
        that sec_type. None if there is none (or its peer is hidden)."""
        k = 0
        for e in self.entries:
            if e[0] == sec_type and e[1] not in self.hidden:
                if key is None:
                    if k == index:
                        return e[2]
                    k += 1
                elif e[1] == key:
                    return e[2]
        return None

    def has(self, key):
        """The peer has secrets here, not hidden."""
        if key in self.hidden:
            return False
        for e in self.entries:
            if e[1] == key:
                return True
        return False

    def same(self, sec_type, key, value):
        """(sec_type, key) holds value already, not hidden."""
        return self.get(sec_type, 0, key) == value

    def peers(self):
        keys = []
        for e in self.entries:
            if e[1] not in keys:
                keys.append(e[1])
        return keys

    def put(self, sec_type, key, value):
        """Keep (sec_type, key) = value in RAM; False if it cannot be kept.
        A hidden peer's old secrets go; a new peer beyond MAX_BONDS drops the
        oldest one. (Plain loops: it runs in the BLE interrupt, where each
        call, a comprehension's too, takes stack.)"""
        if not 1 <= sec_type <= 3 or len(key) > MAX_KEY or len(value) > MAX_VALUE:
            return False
        hidden = key in self.hidden
        if hidden:
            self.hidden.remove(key)
        ents = []
        peers = []
        known = False
        for e in self.entries:
            if e[1] == key and (hidden or e[0] == sec_type):
                continue  # replaced
            ents.append(e)
            if e[1] == key:
                known = True
            elif e[1] not in peers:
                peers.append(e[1])
        while not known and len(peers) >= MAX_BONDS:  # the oldest peer goes
            gone = peers.pop(0)
            kept = []
            for e in ents:
                if e[1] != gone:
                    kept.append(e)
            ents = kept
        ents.append([sec_type, bytes(key), bytes(value)])
        self.entries = ents
        self.dirty = True
        return True

    def hide(self, key):
        """The stack deleted the peer's secrets: hidden (True), or there were
        none to hide (False)."""
        if not self.has(key):
            return False
        self.hidden.append(key)
        return True

    def resume(self):
        """Every hidden peer shown again (its new pairing did not come)."""
        self.hidden = []

    def save(self):
        """To flash, if changed; False if the flash refused it."""
        if not self.dirty:
            return True
        try:
            save(self.entries)
        except (OSError, ValueError):
            return False
        self.dirty = False
        return True

    def clear(self):
        """Every bond removed, on flash too."""
        self.entries = []
        self.hidden = []
        self.dirty = True
        self.save()


def clear():
    save([])
