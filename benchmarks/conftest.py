"""Benchmarks: speed of the simulator and of the firmware's control step."""
