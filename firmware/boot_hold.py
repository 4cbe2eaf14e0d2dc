"""A one-boot hold in the MicroPython REPL, for deploying and maintenance.

`reset repl` on the console leaves a marker on flash and resets; the next
boot finds it, removes it and returns to the REPL without starting the
firmware. A reset is needed because the ESP32's watchdog, once started,
cannot be stopped, and Ctrl-C is off while the console runs (it is a binary
link). The marker is taken once, so a power cycle always starts the firmware.
"""

import os

FILE = "repl.hold"


def request():
    with open(FILE, "w") as f:
        f.write("hold\n")


def take():
    """True (and the marker removed) if this boot should stay in the REPL."""
    try:
        os.remove(FILE)
    except OSError:
        return False
    print("heatrig: held in the REPL for this boot; reset to start the firmware")
    return True
