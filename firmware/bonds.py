"""BLE bonds, kept on flash for the BLE stack: [peer address, keys] as hex
strings, at most MAX_BONDS, the newest last."""

import store

FILE = "bonds"
MAX_BONDS = 4


def load():
    rec, _ = store.load(FILE, {"bonds": []})
    return [b for b in rec["bonds"] if isinstance(b, list) and len(b) == 2 and type(b[0]) is str and type(b[1]) is str]


def add(addr_hex, keys_hex):
    bonds = [b for b in load() if b[0] != addr_hex]
    bonds.append([addr_hex, keys_hex])
    store.save(FILE, {"bonds": bonds[-MAX_BONDS:]})


def clear():
    store.save(FILE, {"bonds": []})
