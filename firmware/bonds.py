"""BLE bonds, kept on flash for the BLE stack.

The stack stores and loads its secrets through the bluetooth module's
_IRQ_SET_SECRET / _IRQ_GET_SECRET (ble_gatt.py): opaque blobs, each a
(sec_type, key, value), the key naming the peer. They are kept here, oldest
first, as [sec_type, key, value] with key and value in base64, in one store
record (store.py: safe against a power cut at any byte). At most MAX_BONDS
peers (distinct keys): a new peer beyond that drops the oldest one's secrets.
"""

from binascii import a2b_base64, b2a_base64

import store
from micropython import const

FILE = "bonds"
MAX_BONDS = const(12)
MAX_KEY = const(16)
MAX_VALUE = const(128)  # NimBLE's security record is ~80 bytes


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
    """The secrets in RAM, as the stack asks for them; every change saved."""

    def __init__(self):
        self.entries = load()

    def get(self, sec_type, index, key):
        """The value of (sec_type, key); with key None, the index'th value of
        that sec_type. None if there is none."""
        k = 0
        for e in self.entries:
            if e[0] == sec_type:
                if key is None:
                    if k == index:
                        return e[2]
                    k += 1
                elif e[1] == key:
                    return e[2]
        return None

    def known(self, key):
        for e in self.entries:
            if e[1] == key:
                return True
        return False

    def peers(self):
        keys = []
        for e in self.entries:
            if e[1] not in keys:
                keys.append(e[1])
        return keys

    def set(self, sec_type, key, value):
        """Store (value None: delete) the secret; False if it cannot be stored."""
        if not 1 <= sec_type <= 3 or len(key) > MAX_KEY or (value is not None and len(value) > MAX_VALUE):
            return False
        ents = [e for e in self.entries if not (e[0] == sec_type and e[1] == key)]
        if value is not None:
            if not self.known(key):
                peers = self.peers()
                while len(peers) >= MAX_BONDS:  # the oldest peer goes
                    old = peers.pop(0)
                    ents = [e for e in ents if e[1] != old]
            ents.append([sec_type, bytes(key), bytes(value)])
        try:
            save(ents)
        except (OSError, ValueError):
            return False
        self.entries = ents
        return True

    def clear(self):
        self.entries = []
        save([])


def clear():
    save([])
