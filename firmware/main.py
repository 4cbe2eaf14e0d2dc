"""Device entry point: MicroPython runs this after boot. The bootstrap
(bootslot.py) picks the firmware's slot and starts it."""

import boot_hold

if not boot_hold.take():
    import bootslot

    bootslot.run()
