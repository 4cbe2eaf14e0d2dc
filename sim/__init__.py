"""heatrig simulator: MicroPython API emulation on a virtual clock, and the
plant models the firmware's hardware drivers talk to."""
