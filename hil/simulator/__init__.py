"""Running the simulator: the MicroPython toolchain, the runner, a run's result."""
