"""Benchmarks (pytest-benchmark) and their tools: the baseline and the control-step bench."""
