"""GATT characteristic flags, as MicroPython's `bluetooth` module numbers
them: the ones the BLE profile sets (firmware/ble_table.py READ, WRITE, ...)
and the module's whole FLAG_* set, read from sim/mpapi/vbluetooth.py, which
emulates that module for the simulator. Both are read from the device's
source, and must agree. The host's BLE side takes them from here:
`BLE_FLAGS.read`, or `F_READ` and the like.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hil.wire import contract


@dataclass(frozen=True)
class ProfileFlags:
    """The flags firmware/ble_table.py gives its characteristics (READ, ...)."""

    read: int
    write: int
    notify: int
    read_encrypted: int
    write_encrypted: int


@dataclass(frozen=True)
class BleFlags:
    """MicroPython's FLAG_* characteristic flags."""

    read: int
    write_no_response: int
    write: int
    notify: int
    indicate: int
    read_encrypted: int
    read_authenticated: int
    read_authorized: int
    write_encrypted: int
    write_authenticated: int
    write_authorized: int


def micropython_flags(emulation: contract.SourceConstants) -> BleFlags:
    """The emulated module's FLAG_* constants."""
    names = [f.name for f in dataclasses.fields(BleFlags)]
    return BleFlags(**{n: emulation.integer("FLAG_" + n.upper()) for n in names})


def profile_flags(profile: contract.SourceConstants, module: BleFlags) -> ProfileFlags:
    """The profile's flag constants (MicroPython's names without FLAG_),
    each checked against the module's."""
    out: dict[str, int] = {}
    for f in dataclasses.fields(ProfileFlags):
        bits, want = profile.integer(f.name.upper()), getattr(module, f.name)
        if bits != want:
            raise contract.ContractError(
                f"{profile.path}: {f.name.upper()} is {bits:#06x}, "
                f"the bluetooth module's FLAG_{f.name.upper()} is {want:#06x}"
            )
        out[f.name] = bits
    return ProfileFlags(**out)


BLE_FLAGS = micropython_flags(contract.sim("mpapi/vbluetooth"))
PROFILE_FLAGS = profile_flags(contract.firmware("ble_table"), BLE_FLAGS)
F_READ = BLE_FLAGS.read
F_WRITE_NO_RESPONSE = BLE_FLAGS.write_no_response
F_WRITE = BLE_FLAGS.write
F_NOTIFY = BLE_FLAGS.notify
F_INDICATE = BLE_FLAGS.indicate
F_READ_ENCRYPTED = BLE_FLAGS.read_encrypted
F_READ_AUTHENTICATED = BLE_FLAGS.read_authenticated
F_READ_AUTHORIZED = BLE_FLAGS.read_authorized
F_WRITE_ENCRYPTED = BLE_FLAGS.write_encrypted
F_WRITE_AUTHENTICATED = BLE_FLAGS.write_authenticated
F_WRITE_AUTHORIZED = BLE_FLAGS.write_authorized
