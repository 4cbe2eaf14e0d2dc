"""The console words the host reads: the first words of the firmware's
events (T_EVENT) and replies (T_REPLY), and of the simulator's run info
(T_PLANT_INFO).

The device writes each as a string literal where it sends it (a constant
would cost it RAM); tests/wire/test_events.py finds every word below among
those literals, so rewording one on the device fails the tests rather than
a wait for it timing out. What follows a word is derived: state, fault, kit
and charge-stage names come from the firmware (series.py, qa/power.py).
"""

from __future__ import annotations

from hil.wire import contract

# firmware events
BOOT = "boot heatrig"  # app.py: "boot heatrig VERSION profile=... boots=N ..."
STATE = "state"  # "state NAME", and "state cooling end=END_NAME"
FAULT = "fault"  # "fault NAME" (faults.NAMES)
REFUSED = "refused"  # "refused NAME": a fault name (heater gate) or usage.py's locked | limit
KIT = "kit"  # "kit NAME" (device.KIT_NAMES)
CHARGE = "charge"  # "charge usb|holder STAGE" (charge_loop.NAMES)
PUFF = "puff"  # "puff N": the session's N-th puff counted (from the start of heating)
SESSION = "session puffs="  # "session puffs=N": the puffs a session counted, as it ends
CALIB = "calib fail_safe"  # "calib fail_safe WHY": no usable calibration record (calib.NAMES)

# firmware replies
VERSION = "OK heatrig"  # to `ver`: "OK heatrig VERSION protocol N"
NO_CHANNEL = "no channel"  # an "@name" line for a channel nobody registered

# the simulator's run info
SIM_START = "sim start"  # "sim start seed=N ticks_offset_us=N ..."
SIM_STEPS = "sim steps"  # the control step's host CPU time, when profiled
SIM_END = "sim end"  # "sim end reason=... t_us=N ..."
SIM_REBOOT = "sim reboot"  # "sim reboot reason=... t_us=N wall_us=N"
PAUSED = "paused t_us="  # a virtual clock's pause, at this device time

_E_UNKNOWN = contract.firmware("console").integer("E_UNKNOWN")


def no_channel(name: str) -> str:
    """The console's error reply to a line for channel `name` it does not have."""
    return f"ERR {_E_UNKNOWN} {NO_CHANNEL} @{name}"


def state(name: str) -> str:
    return f"{STATE} {name}"
