"""MicroPython's hardware APIs emulated on the virtual clock: machine, time, bluetooth, flash."""
